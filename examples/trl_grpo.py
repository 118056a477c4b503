"""GRPO on MultiSessionCollab-v0 with TRL: the simulated user scores the model's replies.

Run: python examples/trl_grpo.py      (a tiny random Llama built offline; about 20 s on 2 CPU cores)
     HF_HUB_OFFLINE=0 python examples/trl_grpo.py --model Qwen/Qwen2.5-0.5B-Instruct --steps 50 --out runs/grpo

What it does, and the GRPO fork pattern on a multi-session env:

1. A memory agent (``all_memory``, the embedded scripted model) plays a warm-up session with each user,
   so it knows something about their preferences.
2. **Fork point.** For each user the script takes ``env.snapshot()`` (every user's lifetime: which
   session comes next) and ``agent.state_dict()`` (the agent's memory), then opens the user's next
   session: the prompt is the agent's system prompt (with what its memory knows) and the user's
   opening message. A dataset row holds the prompt, the ``user_id`` and the snapshot (JSON).
3. ``GRPOTrainer`` samples ``num_generations`` replies per prompt. The reward function receives the
   row's columns; for each reply it ``restore()``s the env to the row's snapshot, ``reset()``s the
   user (the same session and the same opening message: checked) and ``step()``s the reply. The
   env's reward (the feedback label of the user's reaction, plus task success if the reply ends the
   session) is the reply's reward, so the replies of a group are scored from the same user state.
4. **Commit.** After training, for each user the best-scored reply of its group is committed:
   restore the snapshot, replay that reply, let the trained model finish the session, and continue
   from there (``env.snapshot()`` and the agent's state after it are the next fork point). The
   committed sessions are exported with ``personalization_env.export`` (token ids and the loss mask
   that trains only the assistant's tokens), the data a multi-turn trainer takes.

TRL's API as TRL 1.16 defines it: ``GRPOTrainer(model, reward_funcs, args=GRPOConfig(...), train_dataset,
processing_class)``; a reward function is called with ``prompts``, ``completions`` and every dataset
column as keyword arguments and returns one float (or ``None``: not scored) per completion; several
reward functions are summed with ``GRPOConfig.reward_weights`` and logged one by one. (TRL's
``environment_factory`` is not used: it needs a tool-calling chat template and its ``get_reward()``
does not see the completion; for multi-turn rollouts, its ``rollout_func`` returning ``env_mask`` is
the way in, with the masks of ``personalization_env.export``.)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the tiny model is built here; set HF_HUB_OFFLINE=0 to pull --model

from personalization_env.env import MultiSessionCollabEnv  # noqa: E402
from personalization_env.export import SessionRecorder  # noqa: E402

#: reward of an empty reply, which the env refuses as an action (a tiny model can stop at once)
EMPTY_REPLY_REWARD = -1.0


@dataclass
class Args:
    model: str = ""
    """a chat model (path or hub id); empty: build a tiny random Llama offline"""
    profiles: str = "complex"
    """user profiles: "complex" (many checkable preferences, so even a random model's replies differ) or "msc"""
    users: int = 4
    """users (one prompt each)"""
    warmup_sessions: int = 1
    """sessions the memory agent plays with each user before the fork point"""
    steps: int = 3
    """GRPO optimiser steps"""
    num_generations: int = 6
    """replies sampled per prompt (the GRPO group)"""
    prompts_per_step: int = 4
    """prompts per optimiser step"""
    max_completion_length: int = 24
    """tokens per sampled reply"""
    compliance_weight: float = 1.0
    """weight of the privileged compliance term (0: the env's reward alone)"""
    learning_rate: float = 1e-3
    """AdamW learning rate"""
    max_turns: int = 4
    """user messages per session (the commit plays whole sessions with the trained model)"""
    seed: int = 0
    """seed of the env's lifetime, the agent and the trainer"""
    out: str = ""
    """output folder (the tiny model, trainer files, committed.jsonl); empty: a temporary folder, removed"""


def parse_args() -> Args:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for f in dataclasses.fields(Args):
        p.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default)
    return Args(**vars(p.parse_args()))


def build_tiny_chat_model(out: Path, corpus: list[str]) -> Path:
    """A tiny random Llama and a byte-level BPE tokenizer (trained on ``corpus``) with a ChatML template,
    built offline as tests/tiny_models.py builds them. Its replies are junk: it exercises the loop."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=1000, special_tokens=["<|pad|>", "<|bos|>", "<|unk|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|bos|>", eos_token="<|im_end|>", pad_token="<|pad|>", unk_token="<|unk|>",
        chat_template="{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                      "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    cfg = LlamaConfig(vocab_size=len(hf), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=2048,
                      bos_token_id=hf.bos_token_id, eos_token_id=hf.eos_token_id, pad_token_id=hf.pad_token_id,
                      tie_word_embeddings=True)
    lm = LlamaForCausalLM(cfg)
    lm.generation_config = GenerationConfig(eos_token_id=hf.eos_token_id, pad_token_id=hf.pad_token_id)
    lm.save_pretrained(out)
    hf.save_pretrained(out)
    return out


def play_session(env: MultiSessionCollabEnv, agent: Any, user_id: str, seed: int | None = None) -> None:
    """The agent plays ``user_id``'s next session (``seed``: start a fresh lifetime first)."""
    obs, _ = env.reset(seed=seed, options={"user_id": user_id})
    while True:
        obs, reward, terminated, truncated, info = env.step(agent.act(obs))
        agent.observe(obs, reward, terminated, truncated, info)
        if terminated or truncated:
            return


class EnvScorer:
    """GRPO rewards from the env, each reply scored from its row's lifetime snapshot.

    Every reply of a group is stepped in a fresh copy of the same user state (``restore`` + ``reset``),
    so the group's rewards differ only by the replies. Two named reward functions read one step per
    reply (TRL calls each with the batch; the step is done once and shared):

    - :meth:`feedback`: the env's reward (the value of the feedback label of the user's reaction,
      plus task success if the reply ends the session): what a deployed system could also measure;
    - :meth:`compliance`: the share of the user's applicable preferences the reply met, by the
      simulator's own checkers (``info["oracle"]``: privileged, a shaping term only a simulation has;
      ``None`` where no preference applies, which TRL leaves out of the sum).

    The best reply seen for each (user, session) is kept for the commit.
    """

    def __init__(self, env: MultiSessionCollabEnv, weights: tuple[float, float]):
        if not env.oracle_info:
            raise ValueError("the scorer's env must be made with oracle_info=True (the compliance term reads it)")
        self.env = env
        self.weights = weights
        self.best: dict[tuple[str, int], tuple[float, str]] = {}
        self.labels: defaultdict[str, int] = defaultdict(int)
        self._steps: dict[tuple[str, str, str], tuple[float, float | None]] = {}

    def fork(self, user_id: str, lifetime: str) -> dict[str, Any]:
        """Put the env at the start of ``user_id``'s session after the snapshot ``lifetime``."""
        self.env.restore(json.loads(lifetime))
        obs, _ = self.env.reset(options={"user_id": user_id})
        return obs

    def outcome(self, prompt: list, completion: list, user_id: str, lifetime: str) -> tuple[float, float | None]:
        """(env reward, compliance) of the reply ``completion`` to ``prompt`` (one env step, memoised)."""
        reply = completion[-1]["content"].strip()[: self.env.max_reply_chars]
        key = (user_id, lifetime, reply)
        if key in self._steps:
            return self._steps[key]
        obs = self.fork(user_id, lifetime)
        if obs["message"] != prompt[-1]["content"]:
            raise RuntimeError(f"the snapshot of {user_id} does not reopen the prompt's session")
        if not reply:
            result, label = (EMPTY_REPLY_REWARD, None), "empty_reply"
        else:
            _, reward, _, _, info = self.env.step(reply)
            verdicts = info["oracle"]["verdicts"]
            result = (float(reward), sum(verdicts.values()) / len(verdicts) if verdicts else None)
            label = info["feedback_label"]
        self.labels[label] += 1
        total = self.weights[0] * result[0] + self.weights[1] * (result[1] or 0.0)
        best_key = (user_id, int(obs["session"]))
        if reply and (best_key not in self.best or total > self.best[best_key][0]):
            self.best[best_key] = (total, reply)
        if len(self._steps) > 4096:
            self._steps.clear()
        self._steps[key] = result
        return result

    def feedback(self, prompts: list, completions: list, user_id: list[str], lifetime: list[str],
                 **kwargs: Any) -> list[float]:
        """The env's reward for each reply."""
        return [self.outcome(*a)[0] for a in zip(prompts, completions, user_id, lifetime)]

    def compliance(self, prompts: list, completions: list, user_id: list[str], lifetime: list[str],
                   **kwargs: Any) -> list[float | None]:
        """The share of applicable preferences each reply met (privileged shaping)."""
        return [self.outcome(*a)[1] for a in zip(prompts, completions, user_id, lifetime)]


def model_reply(model: Any, tokenizer: Any, messages: list[dict[str, str]], max_new_tokens: int) -> str:
    """The model's greedy reply to ``messages``."""
    import torch

    enc = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False)
    text = tokenizer.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True).strip()
    return text or "..."  # the env refuses an empty reply


def main() -> None:
    args = parse_args()
    if args.out:
        run(args, Path(args.out))
    else:
        with tempfile.TemporaryDirectory(prefix="msc_grpo_") as tmp:
            run(args, Path(tmp))


def run(args: Args, out: Path) -> None:
    start = time.time()
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer, PrinterCallback, set_seed
    from trl import GRPOConfig, GRPOTrainer

    from agents import make_agent

    set_seed(args.seed)
    out.mkdir(parents=True, exist_ok=True)

    # -- warm-up, then the fork point: one row per user ------------------------------------------
    world = {"profiles": args.profiles, "n_users": args.users, "tasks_per_dataset": 20, "max_turns": args.max_turns}
    env = MultiSessionCollabEnv(**world)
    agent = make_agent("all_memory", seed=args.seed)
    users = [p.user_id for p in env.profiles]
    for k in range(args.warmup_sessions):
        for j, uid in enumerate(users):
            play_session(env, agent, uid, seed=args.seed if k == j == 0 else None)  # the seed: a fresh lifetime
    lifetime, memory = env.snapshot(), agent.state_dict()
    rows = []
    for uid in users:
        env.restore(lifetime)
        obs, _ = env.reset(options={"user_id": uid})
        agent.ingest([obs])  # what the agent's act() does first: read the opening message into memory
        prompt = [m.to_dict() for m in agent.build_messages(obs)]  # system (with memory) + the user's opening
        agent.load_state_dict(memory)  # back to the fork point (the commit replays this session)
        rows.append({"prompt": prompt, "user_id": uid, "session": int(obs["session"]),
                     "lifetime": json.dumps(lifetime)})
    dataset = Dataset.from_list(rows)

    # -- the policy ----------------------------------------------------------------------------
    model_path = args.model
    if not model_path:
        corpus = [m["content"] for r in rows for m in r["prompt"]] + [env.transcript_text()] * 4
        model_path = str(build_tiny_chat_model(out / "tiny-chat", corpus))
    tokenizer = AutoTokenizer.from_pretrained(model_path, padding_side="left")

    # -- GRPO ------------------------------------------------------------------------------------
    weights = (1.0, args.compliance_weight)
    # the scorer forks its own env, so scoring never moves the lifetime of `env`
    scorer = EnvScorer(MultiSessionCollabEnv(**world, oracle_info=True), weights)
    config = GRPOConfig(
        output_dir=str(out / "trainer"), max_steps=args.steps, learning_rate=args.learning_rate,
        per_device_train_batch_size=args.prompts_per_step * args.num_generations,
        num_generations=args.num_generations, max_completion_length=args.max_completion_length,
        temperature=1.0, beta=0.0, seed=args.seed, logging_steps=1, report_to="none", save_strategy="no",
        reward_weights=list(weights), use_cpu=not torch.cuda.is_available(), bf16=False,
        activation_checkpointing=False, disable_tqdm=True,
    )
    trainer = GRPOTrainer(model=model_path, reward_funcs=[scorer.feedback, scorer.compliance], args=config,
                          train_dataset=dataset, processing_class=tokenizer)
    trainer.remove_callback(PrinterCallback)  # the summary below replaces its raw log lines
    trainer.train()
    for log in trainer.state.log_history:
        if "reward" in log:
            print(f"step {log['step']}: reward {log['reward']:+.3f} (feedback {log['rewards/feedback/mean']:+.3f}, "
                  f"compliance {log['rewards/compliance/mean']:.3f}), reward std "
                  f"{log['reward_std']:.3f}, grad norm {log['grad_norm']:.2g}")
    print("user reactions to the sampled replies:", dict(sorted(scorer.labels.items())))

    # -- commit: each user's best reply, then the trained model finishes the session -------------
    model = trainer.model.eval()
    committed = []
    env.restore(lifetime)  # the fork point (every row forked from it); each commit moves one user on
    agent.load_state_dict(memory)
    for row in rows:
        key = (row["user_id"], row["session"])
        if key not in scorer.best:
            continue  # every sampled reply of this user was empty: nothing to commit
        score, best = scorer.best[key]
        recorder = SessionRecorder()
        obs, _ = recorder.reset(*env.reset(options={"user_id": row["user_id"]}))
        messages, reply = list(row["prompt"]), best
        while True:
            obs, r, terminated, truncated, info = recorder.step(reply, *env.step(reply))
            if terminated or truncated:
                break
            messages += [{"role": "assistant", "content": reply}, {"role": "user", "content": obs["message"]}]
            reply = model_reply(model, tokenizer, messages, args.max_completion_length)
        # the agent's memory learns from the committed session's user messages, as if it had played it
        cards = len(agent.store(row["user_id"]))
        agent.ingest([recorder.first[0]] + [step[1] for step in recorder.steps[:-1]])
        agent.end_session(row["user_id"])
        traj = recorder.trajectory(system_prompt=row["prompt"][0]["content"], tokenizer=tokenizer)
        committed.append(traj.to_dict())
        print(f"committed {row['user_id']} session {row['session']}: first reply scored {score:+.2f}, "
              f"session return {traj.total_reward:+.2f}, {len(traj.messages)} messages, "
              f"{sum(traj.token_loss_mask)} of {len(traj.input_ids)} tokens trained; "
              f"memory {cards} -> {len(agent.store(row['user_id']))} cards")
    # the next fork point: (env.snapshot(), agent.state_dict()) opens each committed user's following session
    print("next fork point: sessions started per user", dict(zip(users, env.snapshot()["sessions_done"])))
    if args.out:
        with open(out / "committed.jsonl", "w") as f:
            for d in committed:
                f.write(json.dumps(d) + "\n")
        print(f"wrote {out / 'committed.jsonl'}")
    print(f"done in {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
