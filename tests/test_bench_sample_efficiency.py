"""The sample-efficiency bench's reading of a learning curve: 90% must hold, not flash once."""
from robot_rl.bench.sample_efficiency import steps_to


def test_first_step_at_rate_and_first_step_that_held():
    evals = [(2500, 0.0), (5000, 0.95), (7500, 0.6), (10000, 0.9), (12500, 0.9), (15000, 0.7)]
    assert steps_to(evals, 0.9) == 5000                 # a lucky evaluation counts here...
    assert steps_to(evals, 0.9, held=True) == 10000     # ...but not as the bar


def test_a_stop_at_the_rate_is_held_only_if_the_final_evaluation_agrees():
    # stop_at_success: training ends at the first evaluation >= 0.9; the last entry is the final one.
    assert steps_to([(2500, 0.3), (5000, 0.9), (5000, 0.92)], 0.9, held=True) == 5000
    assert steps_to([(2500, 0.3), (5000, 0.9), (5000, 0.84)], 0.9, held=True) is None
    assert steps_to([(2500, 0.3), (5000, 0.95)], 0.9, held=True) is None   # only the final one
    assert steps_to([], 0.9) is None
