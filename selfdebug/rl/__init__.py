"""RL (LeDex §2.3, App. A.3): the paper's split rewards, where they land, and PPO on a LoRA policy over the SFT
model. Importing this package is cheap: codebleu, sentence-transformers, peft and transformers load on use."""

from selfdebug.rl.positions import RewardPositions, reward_positions, reward_positions_for_ids, token_rewards
from selfdebug.rl.rewards import explanation_reward, refinement_reward
from selfdebug.rl.scores import (
           Embedder,
           SentenceEmbedder,
           codebleu_score,
           explanation_similarity,
           load_embedder,
)

__all__ = ["Embedder", "RewardPositions", "SentenceEmbedder", "codebleu_score", "explanation_reward",
           "explanation_similarity", "load_embedder", "refinement_reward", "reward_positions",
           "reward_positions_for_ids", "token_rewards"]
