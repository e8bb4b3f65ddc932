"""The learned reward: labelled frames, the success classifier, and its training.

    robot_rl.reward.labels            crash-safe directory of labelled camera frames
    robot_rl.reward.classifier        RewardClassifier (frozen ResNet-10 + small head), safetensors I/O
    robot_rl.reward.train_classifier  balanced training on cached features, held-out report
    robot_rl.reward.cli               `robot-rl train-classifier`

The gymnasium wrapper that turns a classifier into an env's reward lives in
tasks/classifier_reward.py; recording labels in tasks/apps/record_labels.py.
"""
# No imports here: `robot-rl --help` loads robot_rl.reward.cli, which must not pull in torch.
