"""The state normaliser: fitted once from the first update, frozen, carried by the weights."""
import gymnasium as gym
import numpy as np
import pytest
import torch

from robot_rl import transport
from robot_rl.agents.sac import SACAgent, SACConfig
from robot_rl.agents.state_norm import StateNormalizer


# Plain 2-critic SAC without BC: the batches below carry no `intervention` flag, which BC needs.
PLAIN = dict(critic_ensemble_size=2, critic_subsample_size=None, bc_weight=0.0)


def _spaces(state_dim=4):
    return (gym.spaces.Dict({"state": gym.spaces.Box(-np.inf, np.inf, (state_dim,), np.float32)}),
            gym.spaces.Box(-1, 1, (3,), np.float32))


def _batch(b=64, seed=0, scale=(0.01, 1.0, 10.0, 100.0), offset=5.0):
    g = torch.Generator().manual_seed(seed)
    s = torch.tensor(scale)

    def obs():
        return {"state": torch.randn(b, 4, generator=g) * s + offset}

    return {"obs": obs(), "next_obs": obs(), "action": torch.rand(b, 3, generator=g) * 2 - 1,
            "reward": torch.zeros(b), "terminated": torch.zeros(b)}


def test_normaliser_standardises_with_a_std_floor_and_clip():
    norm = StateNormalizer(3, min_std=0.1, clip=4.0)
    x = {"state": torch.tensor([[1.0, 0.0, 7.0]])}
    assert torch.equal(norm(x)["state"], x["state"])          # identity until fitted
    states = torch.tensor([[0.0, 0.0, 5.0], [2.0, 0.0, 5.0], [4.0, 0.0, 5.0]])
    norm.fit(states)
    assert torch.allclose(norm.mean, torch.tensor([2.0, 0.0, 5.0]))
    assert torch.allclose(norm.std, torch.tensor([2.0, 0.1, 0.1]))   # constant dims: the floor
    out = norm({"state": torch.tensor([[4.0, 0.05, 100.0]]), "wrist": torch.zeros(1)})["state"]
    assert torch.allclose(out, torch.tensor([[1.0, 0.5, 4.0]]))      # the last one clipped
    norm.fit(states * 10)                                            # frozen: a refit does nothing
    assert torch.allclose(norm.mean, torch.tensor([2.0, 0.0, 5.0]))


def test_normaliser_rejects_bad_fits():
    with pytest.raises(ValueError, match="non-finite"):
        StateNormalizer(2).fit(torch.tensor([[0.0, float("nan")], [1.0, 1.0]]))
    with pytest.raises(ValueError, match=">= 2 states"):
        StateNormalizer(2).fit(torch.zeros(1, 2))
    with pytest.raises(ValueError, match="min_std"):
        StateNormalizer(2, min_std=0.0)


def test_agent_fits_on_first_update_and_acts_on_normalised_state():
    torch.set_num_threads(1)
    obs_space, act_space = _spaces()
    agent = SACAgent(SACConfig(hidden_dims=(16, 16), critic_actor_ratio=2, **PLAIN), obs_space, act_space)
    b1, b2 = _batch(seed=0), _batch(seed=1)
    agent.update([b1, b2])
    states = torch.cat([b1["obs"]["state"], b1["next_obs"]["state"], b2["obs"]["state"], b2["next_obs"]["state"]])
    assert agent.state_norm.is_fitted and bool(agent.state_norm.fitted)
    assert torch.allclose(agent.state_norm.mean, states.mean(0))
    assert torch.allclose(agent.state_norm.std, states.std(0).clamp_min(1e-2))
    fitted_mean = agent.state_norm.mean.clone()
    agent.update([_batch(seed=2, offset=-50.0), _batch(seed=3, offset=-50.0)])
    assert torch.equal(agent.state_norm.mean, fitted_mean)            # frozen after the first update

    # act() sees the normalised state: the same as feeding the normalised state to the actor.
    state = np.array([5.0, 5.0, 5.0, 5.0], np.float32)
    normed = (torch.from_numpy(state) - agent.state_norm.mean) / agent.state_norm.std
    with torch.no_grad():
        expected = agent.actor.mode(normed.unsqueeze(0))[0].numpy()
    assert np.allclose(agent.act({"state": state}, deterministic=True), expected, atol=1e-6)


def test_fitted_statistics_travel_with_policy_weights_and_full_state():
    torch.set_num_threads(1)
    obs_space, act_space = _spaces()
    cfg = SACConfig(hidden_dims=(16, 16), critic_actor_ratio=1, **PLAIN)
    src = SACAgent(cfg, obs_space, act_space, seed=0)
    src.update(_batch())
    state = np.array([5.0, 4.0, 3.0, 2.0], np.float32)

    actor_side = SACAgent(cfg, obs_space, act_space, seed=1)
    data = transport.encode_weights(src.policy_state_dict(), 1, "L")
    _, weights = transport.decode_weights(data, transport.weights_schema(actor_side.policy_state_dict()))
    actor_side.load_policy_state_dict(weights)
    assert actor_side.state_norm.is_fitted
    assert np.allclose(actor_side.act({"state": state}, True), src.act({"state": state}, True), atol=1e-6)

    resumed = SACAgent(cfg, obs_space, act_space, seed=2)
    resumed.load_state_dict(src.state_dict())
    assert torch.equal(resumed.state_norm.std, src.state_norm.std) and resumed.state_norm.is_fitted


def test_normalisation_can_be_turned_off():
    obs_space, act_space = _spaces()
    agent = SACAgent(SACConfig(hidden_dims=(16, 16), normalize_state=False), obs_space, act_space)
    assert agent.state_norm is None and "state_norm" not in agent.policy_state_dict()
