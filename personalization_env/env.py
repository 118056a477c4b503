"""The MultiSessionCollab-v0 environment."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from personalization_env.feedback import make_classifier, reward_of
from personalization_env.feedback.labels import validate_rewards
from personalization_env.naming import did_you_mean
from personalization_env.profiles import load_profiles
from personalization_env.spaces import ChatText
from personalization_env.tasks import is_correct, load_tasks
from personalization_env.types import Profile, Task
from personalization_env.users import UserSession, UserTurn, make_user_simulator
from personalization_env.users.base import takes_traits
from personalization_env.worlds import World, get_world

logger = logging.getLogger(__name__)

MAX_SESSIONS = 1_000_000
ENV_ID = "MultiSessionCollab-v0"


@functools.lru_cache(maxsize=32)
def _task_set(names: tuple[str, ...], n: int, data_dir: str | None) -> tuple[Task, ...]:
    """The tasks of ``names`` (generated or read once per process: a run builds an env per lane)."""
    return tuple(t for d in names for t in load_tasks(d, n=n, data_dir=data_dir))


@dataclass
class SessionRecord:
    """Bookkeeping of the running session (what ``info`` and the metrics are built from)."""

    user_index: int
    session: int
    task: Task
    user: UserSession
    transcript: list[tuple[str, str]] = field(default_factory=list)
    turns: list[UserTurn] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    """per reply: the feedback ``label`` of the user's reaction and the ``reward_terms`` returned"""
    done: bool = False
    truncated: bool = False
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def user_turns(self) -> int:
        return len(self.turns)


def user_tokens(text: str) -> int:
    """Tokens in a user message, counted without a tokenizer: one per 4 characters, rounded up (the
    usual rule of thumb for English under BPE tokenizers, and the estimate the chat backends use when a
    server does not count); an empty message counts 0."""
    return (len(text) + 3) // 4


def session_metrics(rec: SessionRecord, *, truncated: bool, judge: Any = None) -> dict[str, float]:
    """Task success, user effort, turns, messages, timeout, compliance and user tokens of a finished
    session (``judge``: an :class:`~personalization_env.tasks.answer_judge.AnswerJudge` for free-form
    tasks). ``timeout`` is 1 when the session did not end with a satisfied user (turn limit or
    giving up); ``user_tokens`` sums :func:`user_tokens` over every message the user wrote."""
    last = rec.turns[-1]
    correct = judge.is_correct(rec.task, last.draft_answer) if judge is not None else \
        is_correct(rec.task, last.draft_answer)
    graded = [t for t in rec.turns[1:] if t.verdicts]
    compliant = [t for t in graded if all(t.verdicts.values())]
    return {
        "task_success": float(correct),
        "user_effort": float(sum(1 for t in rec.turns if t.enforced_ids)),
        "turns": float(rec.user_turns),
        "messages": float(len(rec.transcript)),
        "timeout": float(truncated or last.outcome != "satisfied"),
        "compliance": float(len(compliant) / len(graded)) if graded else 1.0,
        "user_tokens": float(sum(user_tokens(t.message) for t in rec.turns)),
    }


class MultiSessionCollabEnv(gym.Env[dict, str]):
    """A simulated user with persistent preferences; one episode is one session.

    **Description.** A user (a profile of interaction preferences and a persona) brings a task to an
    assistant, session after session. The assistant (the agent) replies in text; the user simulator
    reacts: it restates violated preferences, corrects or asks for clarity, and keeps a draft answer
    that changes only after helpful, compliant replies. Preferences persist across sessions, so an
    agent that remembers them saves the user effort. ``reset()`` starts the current user's next
    session with a new task; ``reset(seed=s)`` starts a fresh lifetime (every user back at session 0)
    with user ``s mod n_users``; ``reset(options={"user_id": ...})`` (or ``"user_index"``) switches user.
    Vector envs (``gym.make_vec`` in any mode, or a hand-built ``AsyncVectorEnv`` reset with a seed)
    therefore give sub-env ``i`` user ``(seed + i) mod n_users``.

    **Observation.** ``Dict(user_id: text, message: text, session: Discrete, turn: Discrete)``: the user's
    latest message, which user and session it is, and the user-turn index.

    **Action.** The assistant's reply: a non-empty ``str`` of at most ``max_reply_chars`` characters.

    **Rewards.** Named terms, each reported in ``info["reward_terms"]``: ``feedback`` = value of the
    feedback label of the user's reaction (defaults: restate -1.0, correction -0.8, confusion -0.6,
    praise +0.8, progress +0.1, neutral/topic shift 0); ``task_success`` = ``success_reward`` times
    whether the final draft answer is correct (last step only). The label's source is ``feedback``:
    by default (``"oracle"``) the simulator's own true label of its message, exact but privileged (a
    deployed assistant could not compute it); ``"keyword"`` or ``"llm:<spec>"`` label the message as a
    deployed system would, with their errors.

    **Episode end.** ``terminated`` when the user ends the session (satisfied, or out of patience);
    ``truncated`` when the user has sent ``max_turns`` messages. Stepping afterwards raises.

    **Info.** ``user_id``, ``session``, ``turn``, ``reward_terms``; on the last step ``metrics``
    (task_success, user_effort, turns, messages, timeout, compliance, user_tokens). With ``oracle_info=True``,
    ``info["oracle"]`` holds what a deployed assistant could not know (true label, enforced preference
    ids, checker verdicts, draft answer, its correctness); agents must not read it (the benchmark
    runner asks for it to record the labels, and strips it before agents see ``info``).

    **Arguments.** ``profiles`` (``"msc"``, ``"complex"``, a path, or Profile objects), ``datasets``
    (comma-separated names), ``user_simulator`` (``"rule"``, ``"llm:<backend spec>"``,
    ``"hybrid:<backend spec>"`` or a simulator), ``max_turns`` (10), ``feedback`` (``"oracle"``,
    ``"keyword"``, ``"llm:<backend spec>"``, ``"llm_local:<model>"``), ``rewards`` (label overrides),
    ``success_reward`` (1.0), ``n_users`` (first N profiles), ``tasks_per_dataset`` (100), ``data_dir``
    (MSC caches), ``max_reply_chars`` (16000), ``render_mode`` (``"ansi"`` or ``"human"``),
    ``answer_judge`` (None, or a backend spec grading free-form tasks: ``meta["scoring"] == "judge"``),
    ``oracle_info`` (False: no ``info["oracle"]``), ``world`` (``"default"``, ``"msc-llama70b"``,
    ``"vars-llama8b"``: a preset of :mod:`personalization_env.worlds` that supplies the profiles,
    datasets, turn limit and tasks per dataset not given explicitly, and its user traits to a
    simulator given by name that has traits (``"rule"``, ``"hybrid:<backend spec>"``; a simulator
    object is used as given). The env does not build the agent: in a world, build the agent's
    embedded model as ``ScriptedBackend(get_world(name).agent_config())``
    (:class:`~personalization_env.llm.scripted.ScriptedBackend`), e.g.
    ``make_agent("vanilla", model=ScriptedBackend(get_world("msc-llama70b").agent_config()))``;
    ``msc run --world`` does so).

    **Version history.** v0: first release.

    >>> import gymnasium as gym, personalization_env
    >>> env = gym.make("MultiSessionCollab-v0", n_users=2)
    >>> obs, info = env.reset(seed=0)
    >>> obs["session"], obs["turn"]
    (0, 0)
    """

    metadata = {"render_modes": ["ansi", "human"], "render_fps": 4}  # fps: for Gymnasium's render wrappers

    def __init__(
        self,
        profiles: str | Sequence[Profile] | None = None,
        datasets: str | Sequence[str] | None = None,
        user_simulator: Any = "rule",
        max_turns: int | None = None,
        feedback: str = "oracle",
        rewards: Mapping[str, float] | None = None,
        success_reward: float = 1.0,
        n_users: int | None = None,
        tasks_per_dataset: int | None = None,
        data_dir: str | None = None,
        max_reply_chars: int = 16000,
        render_mode: str | None = None,
        answer_judge: Any = None,
        oracle_info: bool = False,
        world: str | World = "default",
    ):
        self.world = get_world(world)
        w = self.world
        profiles = profiles if profiles is not None else w.setting("profiles", data_dir)
        datasets = datasets if datasets is not None else w.setting("datasets")
        max_turns = max_turns if max_turns is not None else w.setting("max_turns")
        tasks_per_dataset = tasks_per_dataset if tasks_per_dataset is not None else w.setting("tasks_per_dataset")
        if isinstance(user_simulator, str) and self.world.user_traits and takes_traits(user_simulator):
            # the world's user traits reach every simulator that has them (rule, hybrid), as in `msc run`
            user_simulator = make_user_simulator(user_simulator, traits=dict(self.world.user_traits))
        if not isinstance(max_turns, int) or max_turns < 2:
            raise ValueError(f"max_turns must be an int >= 2, got {max_turns!r}")
        if not isinstance(max_reply_chars, int) or max_reply_chars < 1:
            raise ValueError(f"max_reply_chars must be a positive int, got {max_reply_chars!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        self.profiles: list[Profile] = list(load_profiles(profiles) if isinstance(profiles, str) else profiles)
        if n_users is not None:
            if not isinstance(n_users, int) or not 1 <= n_users <= len(self.profiles):
                raise ValueError(f"n_users must be between 1 and {len(self.profiles)} (the users in this profile set), "
                                 f"got {n_users!r}; n_users=None takes them all (msc run: --users 0)")
            self.profiles = self.profiles[:n_users]
        if not self.profiles:
            raise ValueError("no user profiles given")
        self._user_index = {p.user_id: i for i, p in enumerate(self.profiles)}
        names = [d.strip() for d in (datasets.split(",") if isinstance(datasets, str) else datasets) if d.strip()]
        if not names:
            raise ValueError(f"datasets must name at least one dataset, got {datasets!r}")
        self.datasets = names
        self.tasks: list[Task] = list(_task_set(tuple(names), tasks_per_dataset, None if data_dir is None else str(data_dir)))
        self.simulator = make_user_simulator(user_simulator)
        self.classifier = make_classifier(feedback)
        self.answer_judge = None
        if answer_judge is not None:
            from personalization_env.tasks.answer_judge import AnswerJudge

            self.answer_judge = answer_judge if isinstance(answer_judge, AnswerJudge) else AnswerJudge(answer_judge)
        self.rewards = validate_rewards(rewards or {})
        self.success_reward = float(success_reward)
        self.max_turns = max_turns
        self.max_reply_chars = max_reply_chars
        self.render_mode = render_mode
        self.oracle_info = bool(oracle_info)

        longest = max(len(p.user_id) for p in self.profiles)
        self.observation_space = spaces.Dict({
            "user_id": ChatText(max_length=max(longest, 1)),
            "message": ChatText(max_length=1_000_000),
            "session": spaces.Discrete(MAX_SESSIONS),
            "turn": spaces.Discrete(max_turns + 1),
        })
        self.action_space = ChatText(max_length=max_reply_chars, min_length=1)

        self._current = 0
        self._lifetime_seed: int | None = None
        self._sessions_done = [0] * len(self.profiles)
        self._rec: SessionRecord | None = None

    # ---- gym API -------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        u, s, task, rng = self._begin_reset(seed, options)
        session, first = self.simulator.start(self.profiles[u], task, rng)
        return self._finish_reset(u, s, task, session, first)

    def _begin_reset(self, seed: int | None,
                     options: dict[str, Any] | None) -> tuple[int, int, Task, np.random.Generator]:
        """Pick the user and task of the next session (the simulator opens it; see :meth:`reset`)."""
        super().reset(seed=seed)
        if seed is not None or self._lifetime_seed is None:
            self._lifetime_seed = int(self.np_random.integers(2**62))
            self._sessions_done = [0] * len(self.profiles)
        options = dict(options or {})
        unknown = sorted(set(options) - {"user_id", "user_index"})
        if unknown:
            raise ValueError(f"unknown reset option(s) {unknown}; supported: user_id, user_index")
        if "user_id" in options:
            uid = options["user_id"]
            if uid not in self._user_index:
                extra = did_you_mean(str(uid), list(self._user_index))
                raise ValueError(f"unknown user_id {uid!r}{extra} ({len(self.profiles)} users loaded)")
            self._current = self._user_index[uid]
        elif "user_index" in options:
            i = options["user_index"]
            if not isinstance(i, (int, np.integer)) or not 0 <= i < len(self.profiles):
                raise ValueError(f"user_index must be in [0, {len(self.profiles)}), got {i!r}")
            self._current = int(i)
        elif seed is not None:
            # no user named: user (seed mod n_users), so the sub-envs of any vector env (Gymnasium seeds
            # sub-env i with seed + i) serve distinct users
            self._current = int(seed) % len(self.profiles)
        u = self._current
        s = self._sessions_done[u]
        self._sessions_done[u] += 1
        rng = np.random.default_rng([self._lifetime_seed, u, s])
        task = self.tasks[int(rng.integers(len(self.tasks)))]
        self._rec = None
        return u, s, task, rng

    def _finish_reset(self, u: int, s: int, task: Task, session: UserSession, first: UserTurn) -> tuple[dict, dict]:
        """Record the session the simulator opened and its first message (the result of :meth:`reset`)."""
        self._rec = SessionRecord(user_index=u, session=s, task=task, user=session)
        self._rec.turns.append(first)
        self._rec.transcript.append(("user", first.message))
        return self._obs(), self._info(first)

    def snapshot(self) -> dict[str, Any]:
        """The lifetime state of every user (what decides their next sessions), to :meth:`restore` later.

        It holds the lifetime seed, each user's count of started sessions and the current user; a
        session in progress is not part of it (restore, then ``reset()`` starts the next session).
        """
        return {"lifetime_seed": self._lifetime_seed, "sessions_done": list(self._sessions_done),
                "current": self._current, "user_ids": [p.user_id for p in self.profiles]}

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        """Go back to a :meth:`snapshot` of this env (same users); the next ``reset()`` (without a
        seed) starts the session the snapshot was taken before."""
        ids = [p.user_id for p in self.profiles]
        if list(snapshot.get("user_ids", ids)) != ids:
            raise ValueError("this snapshot was taken of an env with other users; restore it into an env made "
                             "with the same profiles")
        done = [int(x) for x in snapshot["sessions_done"]]
        if len(done) != len(ids) or min(done, default=0) < 0:
            raise ValueError(f"snapshot sessions_done must hold one count >= 0 per user ({len(ids)}), got {done!r:.80}")
        self._lifetime_seed = None if snapshot["lifetime_seed"] is None else int(snapshot["lifetime_seed"])
        self._sessions_done = done
        self._current = int(snapshot["current"])
        self._rec = None

    def step(self, action: str) -> tuple[dict, float, bool, bool, dict]:
        rec = self._begin_step(action)
        return self._finish_step(action, rec.user.respond(action))

    def _begin_step(self, action: Any) -> SessionRecord:
        """Validate ``action`` and record it (the simulator's reaction is computed by the caller)."""
        rec = self._rec
        if rec is None:
            raise RuntimeError("step() called before reset(); call env.reset() first")
        if rec.done:
            raise RuntimeError("step() called after the session ended; call env.reset() to start the next session")
        if not isinstance(action, str):
            raise TypeError(f"action must be the reply text (str), got {type(action).__name__}: {action!r:.60}")
        if not action.strip():
            raise ValueError("action is an empty reply; send a non-empty string")
        if len(action) > self.max_reply_chars:
            raise ValueError(f"reply has {len(action)} characters, over max_reply_chars={self.max_reply_chars}; "
                             "shorten it or raise max_reply_chars")
        rec.transcript.append(("assistant", action))
        return rec

    def _finish_step(self, action: str, turn: UserTurn, label: str | None = None) -> tuple[dict, float, bool, bool, dict]:
        """Record the user's reaction ``turn`` to ``action`` and build the step result (``label``: the
        classifier's label of ``turn``, when the caller already has it)."""
        rec = self._rec
        assert rec is not None
        rec.turns.append(turn)
        rec.transcript.append(("user", turn.message))
        if label is None:
            label = self.classifier.classify(turn.message, self.label_context(action, turn))
        terms = {"feedback": reward_of(label, self.rewards), "task_success": 0.0}
        terminated = turn.done
        truncated = not terminated and rec.user_turns >= self.max_turns
        info = self._info(turn, label=label)
        if terminated or truncated:
            rec.done, rec.truncated = True, truncated
            metrics = session_metrics(rec, truncated=truncated, judge=self.answer_judge)
            terms["task_success"] = self.success_reward * metrics["task_success"]
            info["metrics"] = rec.metrics = metrics
            agreement = getattr(rec.user, "sim_checker", None)  # LLM simulators: agreement with the checkers
            if agreement is not None:
                info["sim_checker"] = dict(agreement)
        info["reward_terms"] = terms
        rec.steps.append({"label": label, "reward_terms": dict(terms)})
        if self.render_mode == "human":
            print(self.render_turn(len(rec.transcript) - 2))
            print(self.render_turn(len(rec.transcript) - 1))
        return self._obs(), float(sum(terms.values())), terminated, truncated, info

    @staticmethod
    def label_context(action: str, turn: UserTurn) -> dict[str, Any]:
        """What the feedback classifier is told about the user's message ``turn`` (the oracle classifier
        reads the simulator's own label; the others, the reply it answers)."""
        return {"oracle_label": turn.label, "previous_reply": action}

    def render(self) -> str | None:
        """The session transcript as text (``ansi``), or printed (``human``)."""
        if self._rec is None:
            return None
        text = self.transcript_text()
        if self.render_mode == "human":
            print(text)
            return None
        return text

    # ---- helpers -------------------------------------------------------------------------------
    @property
    def profile(self) -> Profile:
        """The current user's profile (oracle knowledge: agents must not read it)."""
        return self.profiles[self._current]

    @property
    def task(self) -> Task | None:
        return self._rec.task if self._rec else None

    @property
    def session_record(self) -> SessionRecord | None:
        """The running (or last) session's record: transcript, the user's turns, per-reply labels and
        reward terms, metrics once it ended (read it, do not change it; None before any reset)."""
        return self._rec

    def transcript(self) -> list[tuple[str, str]]:
        """The running (or last) session's messages as (role, text) pairs, the user's first."""
        return list(self._rec.transcript) if self._rec else []

    def transcript_text(self) -> str:
        rec = self._rec
        if rec is None:
            return ""
        head = f"[user {self.profiles[rec.user_index].user_id} | session {rec.session} | task {rec.task.task_id}]"
        return "\n\n".join([head] + [self.render_turn(i) for i in range(len(rec.transcript))])

    def render_turn(self, i: int) -> str:
        role, text = self._rec.transcript[i]  # type: ignore[union-attr]
        return f"{role.upper()}: {text}"

    def _obs(self) -> dict[str, Any]:
        rec = self._rec
        assert rec is not None
        return {
            "user_id": self.profiles[rec.user_index].user_id,
            "message": rec.turns[-1].message,
            "session": min(rec.session, MAX_SESSIONS - 1),
            "turn": min(rec.user_turns - 1, self.max_turns),
        }

    def _info(self, turn: UserTurn, label: str | None = None) -> dict[str, Any]:
        rec = self._rec
        assert rec is not None
        task = rec.task
        info: dict[str, Any] = {
            "user_id": self.profiles[rec.user_index].user_id,
            "session": rec.session,
            "turn": rec.user_turns - 1,
            "task_id": task.task_id,
            "dataset": task.dataset,
            "feedback_label": label,
        }
        if self.oracle_info:
            info["oracle"] = {
                "label": turn.label,
                "enforced_ids": list(turn.enforced_ids),
                "verdicts": dict(turn.verdicts),
                "draft_answer": turn.draft_answer,
                "draft_correct": is_correct(task, turn.draft_answer),
                "outcome": turn.outcome,
            }
        return info
