"""Does SB3 PPO learn a better retrieval decision than rag's reranker? Trained policy vs rag vs random.

PPO is trained on ``MultiSessionCollabRetrieval-v0`` (:mod:`agents.retrieval_env`) with users the
evaluation never sees (the complex set's users after the first ``--eval-users``). Every user gets
``--sessions`` sessions, then all start a fresh lifetime (memory emptied), as in the evaluation.

The evaluation runs each way of choosing the cards on the same users and the same sessions (user
``u``'s sessions are those ``msc run --seed 0`` gives it), one fresh lifetime per user:

- ``ppo``: the trained policy, deterministic (every card whose probability is above 0.5);
- ``rag``: rag's choice, the first J slots (reranker top-J; reproduces the rag agent exactly);
- ``random``: J cards drawn at random among the candidates (seeded per user);
- ``none``: no conditional card (the global cards only);
- ``applicable_first``: cards whose preference applies to the session's task first, then by reranker
  score: it reads the user's profile, so it is the upper bound of any re-ranking of the same J slots.

Per user it takes the mean reward per turn (the env's reward: the feedback label of the user's
reaction, plus task success on the last turn), the mean feedback term, user effort per session and
the share of chosen cards that apply to the task (precision); the tables give means over users
with 95 % t intervals and paired tests over users (:mod:`benchmarks.stats`). It also shows the
signal PPO learns from: under the random choice, the mean reward after turns in which k of the
chosen cards applied. Finally the trained policy runs through ``msc run`` as
``agents.ppo_retrieval:PPORetrievalAgent`` beside rag and rag_vector, and the runner's table is
printed (its sessions are checked to match the env evaluation's)::

    python -m benchmarks.ppo_retrieval                 # 60,000 training turns, 60 users x 10 sessions
    python -m benchmarks.ppo_retrieval --quick         # a smoke run in about a minute
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np

PLUGIN = "agents.ppo_retrieval:PPORetrievalAgent"
CHOICES = ("ppo", "rag", "random", "none", "applicable_first")


def one_thread() -> None:
    """FAISS, BLAS and torch on one thread: tiny searches and a tiny MLP only lose to thread fights."""
    import faiss  # noqa: F401  (loaded first, so that the limit reaches its OpenMP)
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(1)


class FreshLifetimes(gym.Wrapper):
    """After every user of a retrieval env had ``sessions`` sessions, all start over (a fresh lifetime,
    memory emptied, with the next seed): training sees the range of sessions the evaluation sees."""

    def __init__(self, env: gym.Env, sessions: int, seed: int):
        super().__init__(env)
        self.per_lifetime = sessions * len(env.unwrapped.profiles)
        self.episodes, self.lifetimes, self.base = 0, 0, seed

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> Any:
        if seed is not None:
            self.base, self.episodes, self.lifetimes = seed, 0, 0
        elif self.episodes and self.episodes % self.per_lifetime == 0:
            self.lifetimes += 1
            seed = self.base + 7919 * self.lifetimes
        self.episodes += 1
        return self.env.reset(seed=seed, options=options)


def train(args: argparse.Namespace, out: Path) -> tuple[Path, float]:
    """Train PPO; returns the saved policy's path and the seconds it took."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback

    from agents.retrieval_env import RetrievalEnv
    from benchmarks.progress import Progress
    from personalization_env.profiles import load_profiles

    users = load_profiles(args.profiles)[args.eval_users: args.eval_users + args.train_users]
    if len(users) < 1:
        raise ValueError(f"no training users left after the first {args.eval_users} of {args.profiles!r}")
    env = FreshLifetimes(RetrievalEnv(profiles=users, J=args.J), args.sessions, seed=args.seed + 1)
    bar = Progress(args.timesteps, "ppo train", "turn")

    class _Bar(BaseCallback):
        def _on_step(self) -> bool:
            bar.update(self.training_env.num_envs)
            return True

    model = PPO("MultiInputPolicy", env, n_steps=args.n_steps, batch_size=args.batch_size, n_epochs=args.n_epochs,
                learning_rate=args.lr, ent_coef=args.ent_coef, seed=args.seed, device="cpu")
    t0 = time.monotonic()
    model.learn(total_timesteps=args.timesteps, callback=_Bar())
    bar.close()
    path = out / "ppo_retrieval"
    model.save(path)
    return path.with_suffix(".zip"), time.monotonic() - t0


def _chooser(name: str, model: Any, env: Any, rng: np.random.Generator) -> Callable[[dict], np.ndarray]:
    from benchmarks.ablation_rag_vector import _applicable

    K, J = env.K, env.J

    def choose(obs: dict) -> np.ndarray:
        n = int(obs["mask"].sum())
        a = np.zeros(K, dtype=np.int8)
        if name == "ppo":
            a, _ = model.predict(obs, deterministic=True)
        elif name == "rag":
            a[:J] = 1
        elif name == "random":
            a[rng.permutation(n)[:J]] = 1
        elif name == "applicable_first" and n:
            agent, world = env.agent, env.world
            app = _applicable(agent, world.profile, env.candidate_ids, agent.opening(world.profile.user_id))
            order = sorted(range(n), key=lambda s: (not app[s], s))  # slots are in reranker order
            a[order[:J]] = 1
        return np.asarray(a)

    return choose


def evaluate(args: argparse.Namespace, policy: Path) -> tuple[dict[str, dict[str, dict[str, float]]],
                                                              dict[int, list[float]], dict[tuple[str, int], float]]:
    """Per choice, per user: reward/turn, feedback/turn, effort/session, precision, cards/turn; the reward
    by number of applicable chosen cards under ``random``; and PPO's effort per (user, session)."""
    from stable_baselines3 import PPO

    from agents.retrieval_env import RetrievalEnv
    from benchmarks.ablation_rag_vector import _applicable
    from benchmarks.progress import Progress

    model = PPO.load(policy, device="cpu")
    per: dict[str, dict[str, dict[str, float]]] = {}
    by_k: dict[int, list[float]] = defaultdict(list)
    ppo_sessions: dict[tuple[str, int], float] = {}
    bar = Progress(len(CHOICES) * args.eval_users * args.sessions, "evaluate", "session")
    for name in CHOICES:
        env = RetrievalEnv(profiles=args.profiles, n_users=args.eval_users, rotate_users=False, J=args.J)
        per[name] = {}
        for u in range(args.eval_users):
            choose = _chooser(name, model, env, np.random.default_rng([args.seed, u]))
            rewards, feedback, effort, chosen, applicable, available = [], [], [], 0, 0, 0
            for s in range(args.sessions):
                obs, info = env.reset(seed=args.seed if s == 0 else None, options={"user_index": u})
                done = False
                while not done:
                    agent, world = env.agent, env.world
                    opening = agent.opening(world.profile.user_id)
                    action = choose(obs)
                    slots = np.flatnonzero((np.asarray(action) > 0) & (obs["mask"] > 0))[:env.J].tolist()
                    ids = [env.candidate_ids[i] for i in slots]
                    k = sum(_applicable(agent, world.profile, ids, opening)) if ids else 0
                    available += sum(_applicable(agent, world.profile, env.candidate_ids, opening))
                    obs, r, te, tr, info = env.step(action)
                    rewards.append(r)
                    feedback.append(info["reward_terms"]["feedback"])
                    chosen, applicable = chosen + len(ids), applicable + k
                    if name == "random" and ids:
                        by_k[k].append(info["reward_terms"]["feedback"])
                    done = te or tr
                effort.append(info["metrics"]["user_effort"])
                if name == "ppo":
                    ppo_sessions[(info["user_id"], s)] = info["metrics"]["user_effort"]
                bar.update()
            per[name][info["user_id"]] = {
                "reward": float(np.mean(rewards)), "feedback": float(np.mean(feedback)),
                "effort": float(np.mean(effort)), "precision": applicable / chosen if chosen else float("nan"),
                "cards": chosen / len(rewards), "applicable_candidates": available / len(rewards)}
    bar.close()
    return per, dict(by_k), ppo_sessions


def _cell(values: list[float], digits: int = 3) -> str:
    from benchmarks.stats import mean_ci

    values = [v for v in values if not np.isnan(v)]
    if not values:
        return "-"
    m, h = mean_ci(values)
    return f"{m:.{digits}f} ±{h:.{digits}f}" if not np.isnan(h) else f"{m:.{digits}f}"


def report_choices(per: dict[str, dict[str, dict[str, float]]], by_k: dict[int, list[float]]) -> dict[str, Any]:
    """Prints the comparison tables; returns what they show."""
    from benchmarks.stats import mean_ci, paired_test

    users = sorted(per["rag"])
    cols = [("reward", "reward/turn"), ("feedback", "feedback/turn"), ("effort", "effort/session"),
            ("precision", "applicable share"), ("cards", "cards/turn"), ("applicable_candidates", "applicable cand.")]
    head = ["choice"] + [c for _, c in cols]
    lines = [[name] + [_cell([per[name][u][k] for u in users], 2 if k in ("effort", "cards", "applicable_candidates") else 3) for k, _ in cols]
             for name in CHOICES]
    widths = [max(len(h), *(len(x[i]) for x in lines)) for i, h in enumerate(head)]
    fmt = "  ".join("{:<%d}" % w if i == 0 else "{:>%d}" % w for i, w in enumerate(widths))
    print(f"\nPer choice of cards, {len(users)} users (mean over users ± 95 % t interval):\n")
    print("\n".join([fmt.format(*head), fmt.format(*["-" * w for w in widths])] + [fmt.format(*x) for x in lines]))
    tests = {}
    print("\nPaired over users (PPO minus the other; permutation p):")
    for other in ("rag", "random", "none", "applicable_first"):
        for metric in ("reward", "effort"):
            t = paired_test([per["ppo"][u][metric] for u in users], [per[other][u][metric] for u in users])
            tests[f"ppo-{other}:{metric}"] = t
            print(f"  ppo - {other:16s} {metric + '/turn' if metric == 'reward' else 'effort':12s} "
                  f"{t['mean_diff']:+.3f} ±{t['ci95']:.3f}  p = {t['p']:.3f}")
    for other in ("random", "applicable_first"):
        t = paired_test([per["rag"][u]["reward"] for u in users], [per[other][u]["reward"] for u in users])
        tests[f"rag-{other}:reward"] = t
        print(f"  rag - {other:16s} reward/turn  {t['mean_diff']:+.3f} ±{t['ci95']:.3f}  p = {t['p']:.3f}")
    print("\nThe signal PPO learns from: under the random choice, the user's reaction (feedback term) after turns "
          "with k of the chosen cards applicable to the task:")
    signal = {}
    for k in sorted(by_k):
        v = by_k[k]
        signal[k] = {"turns": len(v), "mean": float(np.mean(v)), "ci95": float(mean_ci(v)[1]),
                     "positive": float(np.mean([x > 0 for x in v]))}
        print(f"  k = {k}: {len(v):6d} turns, mean {signal[k]['mean']:+.3f} ±{signal[k]['ci95']:.3f}, "
              f"positive {100 * signal[k]['positive']:.1f} %")
    return {"tests": tests, "signal": signal}


def run_table(args: argparse.Namespace, policy: Path, out: Path,
              ppo_sessions: dict[tuple[str, int], float]) -> list[dict[str, Any]]:
    """The trained policy through msc run's runner beside rag and rag_vector; prints the table."""
    from benchmarks.report import format_table, summarize
    from benchmarks.run import RunConfig, run

    world = dict(profiles=args.profiles, n_users=args.eval_users, sessions=args.sessions, seed=args.seed,
                 workers=args.workers, overwrite=True, tensorboard=False)
    # two runs, pooled (as msc report RUN1 RUN2 would): msc run hands every --agent-arg to every method
    # that takes **kwargs, and rag and rag_vector do not accept ppo_policy
    rows = run(RunConfig(methods=["rag", "rag_vector"], out=str(out / "run_baselines"), **world))
    rows += run(RunConfig(methods=[PLUGIN], agent_args={"ppo_policy": str(policy), "J": args.J}, out=str(out / "run_ppo"),
                          **world))
    plug = {(r["user_id"], r["session"]): r["user_effort"] for r in rows if r["method"] == PLUGIN and r["status"] == "ok"}
    agree = sum(plug.get(k) == v for k, v in ppo_sessions.items())
    for r in rows:
        r["method"] = "ppo_retrieval" if r["method"] == PLUGIN else r["method"]
    print(f"\nmsc run's table ({args.eval_users} users x {args.sessions} sessions; ppo_retrieval = the plug-in "
          f"{PLUGIN} with the trained policy):\n")
    print(format_table(summarize(rows, methods=["rag", "rag_vector", "ppo_retrieval"], max_turns=10)))
    print(f"\nThe plug-in's sessions in msc run match the env evaluation's (user effort): {agree}/{len(ppo_sessions)}")
    return rows


def conclusion(per: dict[str, dict[str, dict[str, float]]], tests: dict[str, Any], signal: dict[int, dict[str, float]],
               J: int) -> str:
    """What the figures show, in words: every claim is read off the measured intervals and means."""
    users = sorted(per["rag"])

    def mean(name: str, key: str) -> float:
        return float(np.nanmean([per[name][u][key] for u in users]))

    def verdict(t: dict[str, float], other: str) -> str:
        lo, hi = t["mean_diff"] - t["ci95"], t["mean_diff"] + t["ci95"]
        word = "higher than" if lo > 0 else "lower than" if hi < 0 else "not distinguishable from"
        return f"{word} {other}'s (difference {t['mean_diff']:+.3f}, 95 % interval {lo:+.3f} to {hi:+.3f}, p = {t['p']:.2f})"

    parts = [f"PPO's reward per turn is {verdict(tests['ppo-rag:reward'], 'rag')} and "
             f"{verdict(tests['ppo-random:reward'], 'random')}.",
             f"Its chosen cards apply to the task {100 * mean('ppo', 'precision'):.0f} % of the time (rag "
             f"{100 * mean('rag', 'precision'):.0f} %, random {100 * mean('random', 'precision'):.0f} %, upper bound "
             f"{100 * mean('applicable_first', 'precision'):.0f} %), {mean('ppo', 'cards'):.2f} cards a turn."]
    means = {n: mean(n, "reward") for n in CHOICES}
    lo, hi = min(means, key=means.get), max(means, key=means.get)
    parts.append(f"The five choices' rewards per turn span {means[lo]:+.3f} ({lo}) to {means[hi]:+.3f} ({hi}), "
                 f"with about {mean('rag', 'applicable_candidates'):.1f} applicable candidates a turn for J = {J} slots.")
    if 0 in signal and J in signal:
        gap = signal[J]["mean"] - signal[0]["mean"]
        half = float(np.hypot(signal[J]["ci95"], signal[0]["ci95"]))
        parts.append(f"Under the random choice the reaction after a turn with all {J} chosen cards applicable averages "
                     f"{signal[J]['mean']:+.3f} ({signal[J]['turns']} turns), after one with none "
                     f"{signal[0]['mean']:+.3f} ({signal[0]['turns']} turns): {gap:+.3f} ±{half:.3f} (turns pooled), "
                     + (f"not distinguishable from zero (a real difference would be within about "
                        f"{abs(gap) + half:.2f} a turn): the reward says little about which cards apply."
                        if abs(gap) <= half else
                        "a difference the data can tell from zero: the reward carries some information about which "
                        "cards apply."))
    return " ".join(parts)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profiles", default="complex")
    p.add_argument("--timesteps", type=int, default=60_000, help="PPO training turns")
    p.add_argument("--train-users", type=int, default=140, help="users after the evaluation users to train on")
    p.add_argument("--eval-users", type=int, default=60, help="the first N users, for the evaluation")
    p.add_argument("--sessions", type=int, default=10, help="sessions per user (training lifetimes and evaluation)")
    p.add_argument("--J", type=int, default=3, help="prompt budget (rag's J)")
    p.add_argument("--n-steps", type=int, default=1024)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--n-epochs", type=int, default=10)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--ent-coef", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2, help="worker processes of the msc run part")
    p.add_argument("--out", default="runs/ppo_retrieval")
    p.add_argument("--quick", action="store_true", help="3,000 training turns, 20 training and 8 evaluation users, "
                                                        "4 sessions: a smoke run")
    args = p.parse_args()
    if args.quick:
        args.timesteps, args.train_users, args.eval_users, args.sessions = 3000, 20, 8, 4
        args.n_steps, args.batch_size, args.n_epochs = 512, 128, 4
    one_thread()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    policy, seconds = train(args, out)
    print(f"PPO: {args.timesteps} training turns on {args.train_users} users in {seconds:.0f} s; policy {policy}")
    per, by_k, ppo_sessions = evaluate(args, policy)
    shown = report_choices(per, by_k)
    run_table(args, policy, out, ppo_sessions)
    text = conclusion(per, shown["tests"], shown["signal"], J=args.J)
    print("\n" + text)
    (out / "ppo_retrieval.json").write_text(json.dumps(
        {"args": vars(args), "train_seconds": seconds, "per_user": per, "conclusion": text,
         "tests": shown["tests"], "signal": {str(k): v for k, v in shown["signal"].items()}}, indent=1))
    print(f"\nper-user figures: {out / 'ppo_retrieval.json'}")


if __name__ == "__main__":
    main()
