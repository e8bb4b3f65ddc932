"""Every SAC / grasp-critic loss against numbers worked out by hand on tiny tensors."""
import math

import numpy as np
import pytest
import torch
import gymnasium as gym

from robot_rl.agents.common import gripper_index
from robot_rl.agents.sac import (SACAgent, SACConfig, actor_loss, bc_loss, critic_loss, critic_target,
                                 grasp_critic_loss, grasp_critic_target, temperature_loss)


def test_critic_target_min_over_ensemble_and_terminated_vs_truncated():
    reward = torch.tensor([1.0, 1.0, 0.5])
    terminated = torch.tensor([0.0, 1.0, 0.0])  # sample 2 is a true end; 0 and 2 bootstrap (e.g. timeouts)
    next_q = torch.tensor([[2.0, 5.0, -1.0],
                           [3.0, 4.0, -3.0]])  # (E=2, B=3)
    y = critic_target(reward, terminated, 0.9, next_q)
    # min over members: [2, 4, -3]; terminated kills the bootstrap
    expected = torch.tensor([1.0 + 0.9 * 2.0, 1.0, 0.5 + 0.9 * -3.0])
    torch.testing.assert_close(y, expected)


def test_critic_target_with_backup_entropy():
    reward, terminated = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    next_q = torch.tensor([[2.0, 7.0]])
    log_prob = torch.tensor([-1.5, 4.0])
    y = critic_target(reward, terminated, 0.5, next_q, log_prob, alpha=0.2)
    # r + g*(1-d)*(minQ - alpha*logp)
    expected = torch.tensor([1.0 + 0.5 * (2.0 - 0.2 * -1.5), 0.0])
    torch.testing.assert_close(y, expected)


def test_critic_loss_is_mean_over_members_and_batch():
    q = torch.tensor([[1.0, 2.0], [0.0, 4.0]])
    target = torch.tensor([1.5, 2.0])
    # errors: [-0.5, 0], [-1.5, 2] -> squares 0.25, 0, 2.25, 4 -> mean 1.625
    assert critic_loss(q, target).item() == pytest.approx(1.625)


def test_actor_loss_uses_mean_q_and_alpha():
    q_pi = torch.tensor([[1.0, 3.0], [3.0, -1.0]])  # means over members: [2, 1]
    log_prob = torch.tensor([-2.0, 1.0])
    alpha = torch.tensor(0.1)
    # mean(alpha*logp - meanQ) = ((-0.2 - 2) + (0.1 - 1)) / 2 = -1.55
    assert actor_loss(q_pi, log_prob, alpha).item() == pytest.approx(-1.55)


def test_temperature_loss_value_and_gradient_direction():
    log_alpha = torch.tensor(math.log(0.5), requires_grad=True)
    log_prob = torch.tensor([1.0, 3.0])  # entropy = -2
    loss = temperature_loss(log_alpha, log_prob, target_entropy=-3.5)
    # alpha * (entropy - target) = 0.5 * (-2 + 3.5) = 0.75
    assert loss.item() == pytest.approx(0.75)
    loss.backward()
    # d/dlog_alpha = alpha * (entropy - target) > 0: entropy above target lowers alpha
    assert log_alpha.grad.item() == pytest.approx(0.75)


def test_bc_loss_is_the_mean_over_expert_rows_of_the_summed_squared_error():
    action = torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.5, 0.0]], requires_grad=True)
    expert_action = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.5, 1.0]])
    expert = torch.tensor([1.0, 0.0, 1.0])
    # rows 0 and 2 are an expert's: squared errors summed over dims 1 and 1 -> mean 1; row 1 (2) ignored
    loss = bc_loss(action, expert_action, expert)
    assert loss.item() == pytest.approx(1.0)
    loss.backward()
    # d/daction = 2 (action - expert) / 2 expert rows; the policy's own row gets no gradient
    torch.testing.assert_close(action.grad, torch.tensor([[-1.0, 0.0], [0.0, 0.0], [0.0, -1.0]]))
    # a batch with no expert row adds nothing (instead of 0/0)
    assert bc_loss(action, expert_action, torch.zeros(3)).item() == 0.0


def test_grasp_target_is_double_dqn_with_penalty():
    reward = torch.tensor([1.0, 0.0])
    penalty = torch.tensor([-0.02, 0.0])
    terminated = torch.tensor([0.0, 1.0])
    online = torch.tensor([[0.0, 5.0, 1.0],    # online argmax = 1
                           [9.0, 0.0, 0.0]])
    target_net = torch.tensor([[7.0, 2.0, 9.0],  # target's own max (9) must NOT be used
                               [1.0, 1.0, 1.0]])
    y = grasp_critic_target(reward, penalty, terminated, 0.9, online, target_net)
    torch.testing.assert_close(y, torch.tensor([1.0 - 0.02 + 0.9 * 2.0, 0.0]))


def test_grasp_loss_picks_the_taken_action_index():
    q = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    idx = gripper_index(torch.tensor([1.0, -1.0]))  # close -> 2, open -> 0
    assert idx.tolist() == [2, 0]
    # (3 - 2)^2 and (4 - 1)^2 -> mean 5
    assert grasp_critic_loss(q, idx, torch.tensor([2.0, 1.0])).item() == pytest.approx(5.0)


def test_gripper_index_thresholds():
    g = torch.tensor([-1.0, -0.5, -0.49, 0.0, 0.49, 0.5, 1.0])
    assert gripper_index(g).tolist() == [0, 0, 1, 1, 1, 2, 2]


def _state_agent(**kw):
    obs = gym.spaces.Dict({"state": gym.spaces.Box(-np.inf, np.inf, (5,), np.float32)})
    act = gym.spaces.Box(-1, 1, (3,), np.float32)
    # Plain 2-critic SAC without BC unless a test says otherwise (the batches carry no
    # `intervention` flag); the defaults are held in tests/test_configs_shipped.py.
    kw = {"critic_ensemble_size": 2, "critic_subsample_size": None, "bc_weight": 0.0, **kw}
    return SACAgent(SACConfig(hidden_dims=(16, 16), **kw), obs, act, seed=3)


def _batch(b=8, seed=0, action_dim=3):
    g = torch.Generator().manual_seed(seed)
    return {"obs": {"state": torch.randn(b, 5, generator=g)}, "next_obs": {"state": torch.randn(b, 5, generator=g)},
            "action": torch.rand(b, action_dim, generator=g) * 2 - 1, "reward": torch.randn(b, generator=g),
            "terminated": torch.zeros(b), "grasp_penalty": torch.zeros(b)}


def test_agent_critic_loss_matches_hand_assembly_from_its_networks():
    """The agent's critic loss is the formula above applied to its own nets and noise."""
    agent = _state_agent(critic_ensemble_size=4, critic_subsample_size=2, backup_entropy=True, discount=0.8)
    batch = _batch()
    batch["terminated"][:3] = 1.0
    noise = torch.randn(8, 3, generator=torch.Generator().manual_seed(1))
    subset = torch.tensor([3, 1])
    obs, nxt = batch["obs"]["state"], batch["next_obs"]["state"]
    loss, metrics = agent._head_losses(obs, nxt, nxt, batch["action"], batch["reward"], batch["terminated"],
                                       None, noise, subset, None)
    with torch.no_grad():
        mean, log_std = agent.actor(nxt)
        u = mean + log_std.exp() * noise
        a = torch.tanh(u)
        # float64 for the textbook formula: log1p(-tanh(u)^2) hits -inf in float32 once |u| > ~9
        u64 = u.double()
        logp = (torch.distributions.Normal(mean.double(), log_std.exp().double()).log_prob(u64)
                - torch.log1p(-torch.tanh(u64).square())).sum(-1).float()
        alpha = agent.log_alpha.exp()
        members_q = torch.stack([agent.target_critic.member_forward(torch.cat([nxt, a], -1), k)[:, 0]
                                 for k in (3, 1)])
        y = batch["reward"] + 0.8 * (1 - batch["terminated"]) * (members_q.min(0).values - alpha * logp)
        q = torch.stack([agent.critic.member_forward(torch.cat([obs, batch["action"]], -1), k)[:, 0]
                         for k in range(4)])
        expected = ((q - y) ** 2).mean()
    torch.testing.assert_close(loss, expected, rtol=1e-4, atol=1e-5)
    assert "actor_loss" not in metrics  # critic-only step


def test_terminated_transitions_ignore_next_state_but_truncated_ones_do_not():
    agent = _state_agent()
    batch = _batch()
    batch["terminated"][:4] = 1.0
    r, d = batch["reward"], batch["terminated"]
    noise = torch.zeros(8, 3)

    def targets(next_state):
        with torch.no_grad():
            a, _ = agent.actor.sample(next_state, noise=noise)
            next_q = agent.target_critic(torch.cat([next_state, a], -1)).squeeze(-1)
            return critic_target(r, d, agent.cfg.discount, next_q)

    y1, y2 = targets(batch["next_obs"]["state"]), targets(batch["next_obs"]["state"] + 5.0)
    torch.testing.assert_close(y1[:4], r[:4])
    torch.testing.assert_close(y1[:4], y2[:4])
    assert not torch.allclose(y1[4:], y2[4:])  # non-terminated (incl. truncated) still bootstrap
