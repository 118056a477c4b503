"""Sessions as training data for LLM-RL trainers: a chat trajectory with loss masks.

A session exports as a :class:`Trajectory`: the messages (the agent's system prompt when the caller
knows it, the user's messages, the assistant's replies), a loss mask per message (1 for the
assistant's own messages, 0 for the simulated user's and the system's), the env's reward for each
reply with its named terms and feedback label, and the session metrics. Given a Hugging Face
tokenizer with a chat template, it also carries the token ids of the rendered conversation and a
token-level loss mask aligned to them (see :func:`tokenize_chat`).

Two sources give the same trajectory (tested):

- :func:`trajectory_from_env`: the env's current (or last) session, read after the fact from the
  env's session record (what the env returned; nothing is recomputed);
- :class:`SessionRecorder` / :func:`trajectory_from_steps`: the ``reset`` and ``step`` results a
  caller collects while stepping.

>>> from personalization_env.env import MultiSessionCollabEnv
>>> env = MultiSessionCollabEnv(n_users=1, tasks_per_dataset=5)
>>> recorder = SessionRecorder()
>>> obs, info = recorder.reset(*env.reset(seed=0))
>>> obs, reward, terminated, truncated, info = recorder.step("Let me think.", *env.step("Let me think."))
>>> traj = recorder.trajectory(system_prompt="You are a helpful assistant.")
>>> [m["role"] for m in traj.messages], traj.loss_mask
(['system', 'user', 'assistant', 'user'], [0, 0, 1, 0])

Nothing heavy is imported here: the tokenizer is passed in.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Mapping, Sequence

logger = logging.getLogger(__name__)

__all__ = [
    "SessionRecorder",
    "TokenizedChat",
    "Trajectory",
    "tokenize_chat",
    "trajectory_from_env",
    "trajectory_from_steps",
]


@dataclass
class TokenizedChat:
    """A conversation rendered with a chat template and tokenized, with its token-level loss mask.

    Attributes:
        input_ids: the token ids of the rendered conversation (``tokenizer(text, add_special_tokens=False)``,
            which is what ``apply_chat_template(..., tokenize=True)`` gives).
        loss_mask: one entry per token: 1 for the tokens the model produced in a trained (assistant)
            message (its content and its end-of-turn token), 0 for everything else (the template's
            role markers, the system prompt, the user's messages, separators between messages).
        spans: ``[start, end)`` token indices of the trained tokens of each trained message, in order
            (where a trainer puts a per-turn reward: at ``end - 1``).
        text: the rendered conversation.
    """

    input_ids: list[int]
    loss_mask: list[int]
    spans: list[tuple[int, int]]
    text: str


def _render(tokenizer: Any, messages: Sequence[Mapping[str, str]], *, add_generation_prompt: bool,
            template_kwargs: Mapping[str, Any]) -> str:
    return tokenizer.apply_chat_template([dict(m) for m in messages], tokenize=False,
                                         add_generation_prompt=add_generation_prompt, **template_kwargs)


def _trained_char_spans(tokenizer: Any, messages: Sequence[Mapping[str, str]], mask: Sequence[int],
                        end_of_turn: str | None,
                        template_kwargs: Mapping[str, Any]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character span of each trained message's generated text."""
    full = _render(tokenizer, messages, add_generation_prompt=False, template_kwargs=template_kwargs)
    spans: list[tuple[int, int]] = []
    before = ""  # the rendering of messages[:k]
    for k in range(len(messages)):
        upto = _render(tokenizer, messages[:k + 1], add_generation_prompt=False, template_kwargs=template_kwargs)
        if not upto.startswith(before) or not full.startswith(upto):
            raise ValueError(
                f"the chat template renders message {k} ({messages[k]['role']}) differently once later messages follow "
                "(the rendering of the first messages is not a prefix of the whole conversation), so its tokens "
                "cannot be attributed to messages; use a template that renders each message the same way wherever "
                "it stands")
        if mask[k]:
            if k == 0:
                raise ValueError("a trained message needs a message before it (the conversation opens with the user)")
            head = _render(tokenizer, messages[:k], add_generation_prompt=True, template_kwargs=template_kwargs)
            if not (head.startswith(before) and upto.startswith(head)):
                raise ValueError(
                    f"the chat template's generation prompt before message {k} is not how it renders the start of that "
                    "message, so the model's own tokens cannot be told from the template's")
            piece = upto[len(head):]
            # The model produces the message's text and then its end-of-turn token, and stops: text the
            # template writes after that (a newline before the next turn) was never generated.
            cut = piece.rfind(end_of_turn) if end_of_turn else -1
            stop = cut + len(end_of_turn) if cut >= 0 else len(piece.rstrip())  # type: ignore[arg-type]
            spans.append((len(head), len(head) + stop))
        before = upto
    if before != full:
        raise ValueError("the chat template renders the conversation with text after its last message; "
                         "its tokens cannot be attributed to messages")
    return full, spans


def tokenize_chat(tokenizer: Any, messages: Sequence[Mapping[str, str]], loss_mask: Sequence[int] | None = None, *,
                  end_of_turn: str | None = None,
                  chat_template_kwargs: Mapping[str, Any] | None = None) -> TokenizedChat:
    """Render ``messages`` with the tokenizer's chat template, tokenize it, and mark the trained tokens.

    How the mask is made exact for any template: the conversation is rendered once in full and once
    per prefix ``messages[:k]``. A trained message's generated text starts where the template's
    generation prompt for ``messages[:k]`` ends (so the role marker the template adds, such as
    ``<|im_start|>assistant\\n``, is not trained) and ends after the last ``end_of_turn`` in the
    message's rendering (so ``<|im_end|>`` is trained, since the model must learn to stop, and the
    separator after it is not); a template without that marker ends it at the rendered content
    with trailing whitespace left out. The full text is tokenized once, and a token is trained when
    its character offsets lie inside such a span. A template whose rendering of earlier messages
    changes when later ones follow (e.g. one that drops earlier reasoning) is refused, since its
    tokens cannot be attributed. A token that straddles a span's edge (a merge across the boundary,
    impossible where the template delimits messages with special tokens) is not trained, and logged.

    Args:
        tokenizer: a fast Hugging Face tokenizer with a chat template.
        messages: ``{"role", "content"}`` dicts.
        loss_mask: one 0/1 per message (default: 1 for ``assistant`` messages).
        end_of_turn: the text that ends an assistant turn (default: ``tokenizer.eos_token``).
        chat_template_kwargs: passed to ``apply_chat_template`` (e.g. ``{"enable_thinking": False}``).

    Returns:
        The ids, their loss mask, each trained message's token span and the rendered text.

    Raises:
        ValueError: mismatched lengths, a tokenizer without character offsets, or a template whose
            tokens cannot be attributed to messages.
    """
    msgs = [{"role": str(m["role"]), "content": str(m["content"])} for m in messages]
    mask = [int(m["role"] == "assistant") for m in msgs] if loss_mask is None else [int(bool(x)) for x in loss_mask]
    if len(mask) != len(msgs):
        raise ValueError(f"loss_mask has {len(mask)} entries for {len(msgs)} messages")
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"tokenize_chat needs a fast tokenizer (character offsets), got {type(tokenizer).__name__}")
    eot = tokenizer.eos_token if end_of_turn is None else end_of_turn
    text, char_spans = _trained_char_spans(tokenizer, msgs, mask, eot or None, dict(chat_template_kwargs or {}))
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]
    token_mask = [0] * len(ids)
    spans: list[tuple[int, int]] = []
    straddling = 0
    i = 0
    for start, end in char_spans:
        first, last = None, -1
        while i < len(ids) and offsets[i][1] <= start and offsets[i][0] < start:
            i += 1
        while i < len(ids) and offsets[i][0] < end:
            s, e = offsets[i]
            if start <= s and e <= end:
                token_mask[i] = 1
                first = i if first is None else first
                last = i
            else:
                straddling += 1
            i += 1
        spans.append((first, last + 1) if first is not None else (i, i))
    if straddling:
        logger.warning("%d token(s) straddle the edge between a trained message and the template's text around it; "
                       "they are not trained", straddling)
    return TokenizedChat(input_ids=ids, loss_mask=token_mask, spans=spans, text=text)


@dataclass
class Trajectory:
    """One session as a chat trajectory (see the module docstring).

    Attributes:
        messages: ``{"role", "content"}`` dicts: ``system`` (when given), then the user's opening and
            alternating ``assistant`` / ``user`` messages, the user's reaction to the last reply included.
        loss_mask: one per message: 1 for ``assistant``, 0 otherwise.
        rewards: the env's reward for each assistant message, in order.
        reward_terms: the named terms of each of those rewards (``feedback``, ``task_success``).
        feedback_labels: the feedback label of the user's reaction to each assistant message.
        metrics: the session metrics (empty while the session runs).
        user_id, session, task_id, dataset: which session this is.
        terminated, truncated: how it ended (both False while it runs).
        input_ids, token_loss_mask, token_spans: with a tokenizer, see :class:`TokenizedChat`
            (``token_spans[j]``: the trained tokens of the j-th assistant message).
    """

    messages: list[dict[str, str]]
    loss_mask: list[int]
    rewards: list[float]
    reward_terms: list[dict[str, float]]
    feedback_labels: list[str | None]
    metrics: dict[str, float]
    user_id: str
    session: int
    task_id: str
    dataset: str
    terminated: bool = False
    truncated: bool = False
    input_ids: list[int] | None = None
    token_loss_mask: list[int] | None = None
    token_spans: list[tuple[int, int]] | None = None

    @property
    def total_reward(self) -> float:
        """The session's return (sum of the rewards)."""
        return float(sum(self.rewards))

    @property
    def assistant_indices(self) -> list[int]:
        """Indices in :attr:`messages` of the assistant messages (``rewards[j]`` is for ``assistant_indices[j]``)."""
        return [i for i, m in enumerate(self.messages) if m["role"] == "assistant"]

    def tokenize(self, tokenizer: Any, **kwargs: Any) -> Trajectory:
        """This trajectory with :attr:`input_ids`, :attr:`token_loss_mask` and :attr:`token_spans` filled in
        (``kwargs``: see :func:`tokenize_chat`)."""
        tok = tokenize_chat(tokenizer, self.messages, self.loss_mask, **kwargs)
        return replace(self, input_ids=tok.input_ids, token_loss_mask=tok.loss_mask, token_spans=tok.spans)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (a JSONL row); :meth:`from_dict` reads it back."""
        d = asdict(self)
        if d["token_spans"] is not None:
            d["token_spans"] = [list(s) for s in d["token_spans"]]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Trajectory:
        kw = dict(d)
        if kw.get("token_spans") is not None:
            kw["token_spans"] = [tuple(s) for s in kw["token_spans"]]
        return cls(**kw)


def _messages(system_prompt: str | None,
              transcript: Sequence[tuple[str, str]]) -> tuple[list[dict[str, str]], list[int]]:
    msgs = ([{"role": "system", "content": system_prompt}] if system_prompt is not None else []) + \
        [{"role": r, "content": t} for r, t in transcript]
    return msgs, [int(m["role"] == "assistant") for m in msgs]


def trajectory_from_steps(first_obs: Mapping[str, Any], first_info: Mapping[str, Any],
                          steps: Sequence[Sequence[Any]], *, system_prompt: str | None = None,
                          tokenizer: Any = None, **tokenize_kwargs: Any) -> Trajectory:
    """The trajectory of a session from what ``reset`` and ``step`` returned.

    Args:
        first_obs, first_info: what ``env.reset()`` returned.
        steps: per step, ``(action, obs, reward, terminated, truncated, info)``: the reply sent and
            what ``env.step(action)`` returned for it.
        system_prompt: the system prompt the agent replied under, if known (an agent whose prompt
            changes during the session, as memory agents' do, has no single one: pass the first).
        tokenizer: a fast HF tokenizer with a chat template: fills in the token fields.
        **tokenize_kwargs: see :func:`tokenize_chat`.
    """
    transcript = [("user", str(first_obs["message"]))]
    rewards, terms, labels = [], [], []
    terminated = truncated = False
    metrics: dict[str, float] = {}
    for k, step in enumerate(steps):
        if len(step) != 6:
            raise ValueError(f"step {k} must be (action, obs, reward, terminated, truncated, info), "
                             f"got {len(step)} items")
        if terminated or truncated:
            raise ValueError(f"step {k} follows the end of the session (a trajectory is one session)")
        action, obs, reward, terminated, truncated, info = step
        transcript += [("assistant", str(action)), ("user", str(obs["message"]))]
        rewards.append(float(reward))
        terms.append({k2: float(v) for k2, v in dict(info.get("reward_terms", {})).items()})
        labels.append(info.get("feedback_label"))
        terminated, truncated = bool(terminated), bool(truncated)
        if "metrics" in info:
            metrics = {k2: float(v) for k2, v in dict(info["metrics"]).items()}
    msgs, mask = _messages(system_prompt, transcript)
    traj = Trajectory(messages=msgs, loss_mask=mask, rewards=rewards, reward_terms=terms, feedback_labels=labels,
                      metrics=metrics, user_id=str(first_info["user_id"]), session=int(first_info["session"]),
                      task_id=str(first_info["task_id"]), dataset=str(first_info["dataset"]),
                      terminated=terminated, truncated=truncated)
    return traj.tokenize(tokenizer, **tokenize_kwargs) if tokenizer is not None else traj


@dataclass
class SessionRecorder:
    """Collects one session's ``reset`` / ``step`` results as the caller steps, for :meth:`trajectory`.

    Both methods hand their inputs back, so they wrap the env calls in place::

        obs, info = rec.reset(*env.reset())
        obs, r, terminated, truncated, info = rec.step(reply, *env.step(reply))
    """

    first: tuple[dict[str, Any], dict[str, Any]] | None = None
    steps: list[tuple[Any, ...]] = field(default_factory=list)

    def reset(self, obs: Mapping[str, Any], info: Mapping[str, Any]) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
        """Start a new session (forgets the previous one)."""
        self.first, self.steps = (dict(obs), dict(info)), []
        return obs, info

    def step(self, action: str, obs: Mapping[str, Any], reward: float, terminated: bool, truncated: bool,
             info: Mapping[str, Any]) -> tuple[Mapping[str, Any], float, bool, bool, Mapping[str, Any]]:
        """Record the reply ``action`` and the env's step result for it."""
        if self.first is None:
            raise RuntimeError("SessionRecorder.step() before reset(); record the env's reset() result first")
        self.steps.append((action, dict(obs), reward, terminated, truncated, dict(info)))
        return obs, reward, terminated, truncated, info

    def trajectory(self, *, system_prompt: str | None = None, tokenizer: Any = None,
                   **tokenize_kwargs: Any) -> Trajectory:
        """The recorded session (see :func:`trajectory_from_steps`)."""
        if self.first is None:
            raise RuntimeError("nothing recorded; call reset() with the env's reset() result first")
        return trajectory_from_steps(*self.first, self.steps, system_prompt=system_prompt, tokenizer=tokenizer,
                                     **tokenize_kwargs)


def trajectory_from_env(env: Any, *, system_prompt: str | None = None, tokenizer: Any = None,
                        **tokenize_kwargs: Any) -> Trajectory:
    """The trajectory of the env's current or last session, read from the env after the fact (its
    :attr:`~personalization_env.env.MultiSessionCollabEnv.session_record`: transcript, the labels and
    reward terms it returned for each reply, the metrics once the session ended).

    Args:
        env: a ``MultiSessionCollab-v0`` env (wrapped or not) after ``reset()``.
        system_prompt, tokenizer, **tokenize_kwargs: see :func:`trajectory_from_steps`.

    Raises:
        ValueError: the env has no session (``reset()`` not called, or ``restore()`` since).
    """
    base = getattr(env, "unwrapped", env)
    rec = base.session_record
    if rec is None:
        raise ValueError("the env has no session to export; call env.reset() and step it first")
    transcript = [(str(r), str(t)) for r, t in rec.transcript]
    terms = [dict(st["reward_terms"]) for st in rec.steps]
    terminated = bool(rec.done and not rec.truncated)
    task = rec.task
    msgs, mask = _messages(system_prompt, transcript)
    traj = Trajectory(messages=msgs, loss_mask=mask, rewards=[float(sum(t.values())) for t in terms],
                      reward_terms=terms, feedback_labels=[st["label"] for st in rec.steps], metrics=dict(rec.metrics),
                      user_id=base.profiles[rec.user_index].user_id, session=int(rec.session),
                      task_id=str(task.task_id), dataset=str(task.dataset), terminated=terminated,
                      truncated=bool(rec.truncated))
    return traj.tokenize(tokenizer, **tokenize_kwargs) if tokenizer is not None else traj
