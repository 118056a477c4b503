"""Sessions exported as chat trajectories: message-level data against the transcript, token-level
loss masks checked token by token against masks computed independently, and the two export paths
(from the env, from recorded steps) against each other."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest

from agents import make_agent
from personalization_env.env import MultiSessionCollabEnv
from personalization_env.export import (
    SessionRecorder,
    Trajectory,
    tokenize_chat,
    trajectory_from_env,
    trajectory_from_steps,
)

pytest.importorskip("transformers")

SYSTEM = "You are a helpful assistant. Keep answers short."

# ChatML with the assistant's generated part wrapped in {% generation %}: Hugging Face's own assistant
# mask (return_assistant_tokens_mask) of this template is an independent computation of ours. The
# newline after <|im_end|> is written as an expression: chat templates trim the newline after a tag.
CHATML_TAGGED = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['role'] == 'assistant' %}{% generation %}{{ m['content'] }}<|im_end|>{% endgeneration %}"
    "{% else %}{{ m['content'] }}<|im_end|>{% endif %}{{ '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")

# Llama-3 style: one begin-of-text token, role headers, trimmed content, <|eot_id|> after each message,
# and a default system message inserted when the conversation has none.
LLAMA3 = (
    "<|begin_of_text|>{% if messages[0]['role'] != 'system' %}"
    "<|start_header_id|>system<|end_header_id|>\n\nDefault system prompt.<|eot_id|>{% endif %}"
    "{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
    "{% if m['role'] == 'assistant' %}{% generation %}{{ m['content'] | trim }}<|eot_id|>{% endgeneration %}"
    "{% else %}{{ m['content'] | trim }}<|eot_id|>{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}")
LLAMA3_TOKENS = ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]


def _untagged(template: str) -> str:
    return template.replace("{% generation %}", "").replace("{% endgeneration %}", "")


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    """The tiny ChatML tokenizer of tests/tiny_models.py (its chat template has no generation tags)."""
    from transformers import AutoTokenizer

    from tests.tiny_models import build_chat_model

    return AutoTokenizer.from_pretrained(build_chat_model(tmp_path_factory.mktemp("tiny")))


@pytest.fixture(scope="module")
def llama3_tokenizer(tmp_path_factory):
    from transformers import AddedToken, AutoTokenizer

    from tests.tiny_models import build_chat_model

    tok = AutoTokenizer.from_pretrained(build_chat_model(tmp_path_factory.mktemp("tiny3")))
    tok.add_tokens([AddedToken(t, special=True, normalized=False) for t in LLAMA3_TOKENS], special_tokens=True)
    tok.chat_template = _untagged(LLAMA3)
    return tok


def play_recorded(env, agent, user_id, *, seed=None):
    """One session, recorded by a SessionRecorder and, independently, in plain lists."""
    rec = SessionRecorder()
    obs, info = rec.reset(*env.reset(seed=seed, options={"user_id": user_id}))
    plain = {"opening": obs["message"], "replies": [], "reactions": [], "rewards": [], "infos": []}
    while True:
        reply = agent.act(obs)
        obs, r, te, tr, info = rec.step(reply, *env.step(reply))
        agent.observe(obs, r, te, tr, info)
        plain["replies"].append(reply)
        plain["reactions"].append(obs["message"])
        plain["rewards"].append(r)
        plain["infos"].append(info)
        if te or tr:
            return rec, plain


@pytest.fixture(scope="module")
def session():
    """A real session of the scripted all_memory agent with a user it has met once before."""
    env = MultiSessionCollabEnv(n_users=2, tasks_per_dataset=20)
    agent = make_agent("all_memory", seed=0)
    play_recorded(env, agent, "msc-0000", seed=0)
    rec, plain = play_recorded(env, agent, "msc-0000")
    assert len(plain["replies"]) >= 2  # a multi-turn session, so boundaries between turns are exercised
    return env, rec, plain


def test_messages_masks_and_rewards_line_up_with_the_transcript(session):
    env, rec, plain = session
    traj = rec.trajectory(system_prompt=SYSTEM)
    expected = [("system", SYSTEM), ("user", plain["opening"])]
    for reply, reaction in zip(plain["replies"], plain["reactions"]):
        expected += [("assistant", reply), ("user", reaction)]
    assert [(m["role"], m["content"]) for m in traj.messages] == expected
    assert [(r, t) for r, t in env.unwrapped._rec.transcript] == expected[1:]
    assert traj.loss_mask == [int(role == "assistant") for role, _ in expected]
    assert traj.assistant_indices == [i for i, (role, _) in enumerate(expected) if role == "assistant"]
    assert traj.rewards == plain["rewards"] and traj.total_reward == pytest.approx(sum(plain["rewards"]))
    assert [sum(t.values()) for t in traj.reward_terms] == plain["rewards"]
    assert traj.feedback_labels == [i["feedback_label"] for i in plain["infos"]]
    assert traj.metrics == plain["infos"][-1]["metrics"] and traj.metrics["turns"] == len(plain["replies"]) + 1
    assert traj.terminated or traj.truncated
    assert traj.reward_terms[-1]["task_success"] == traj.metrics["task_success"] == 1.0  # the session's last reward
    assert all(t["task_success"] == 0.0 for t in traj.reward_terms[:-1])
    assert (traj.user_id, traj.session) == ("msc-0000", 1)
    assert trajectory_from_env(env, system_prompt=SYSTEM) == traj
    assert traj.input_ids is None and traj.token_loss_mask is None


@pytest.mark.parametrize("feedback", ["oracle", "keyword"])
def test_export_from_the_env_equals_export_from_recorded_steps(feedback, tokenizer):
    env = MultiSessionCollabEnv(n_users=2, tasks_per_dataset=20, feedback=feedback, max_turns=3)
    agent = make_agent("vanilla", seed=1)
    for k, uid in enumerate(["msc-0000", "msc-0001", "msc-0000"]):
        rec, plain = play_recorded(env, agent, uid, seed=0 if k == 0 else None)
        from_env = trajectory_from_env(env, system_prompt=SYSTEM, tokenizer=tokenizer)
        assert from_env == rec.trajectory(system_prompt=SYSTEM, tokenizer=tokenizer)
        assert from_env.rewards == plain["rewards"] and from_env.input_ids
    # mid-session: what exists so far, no metrics yet
    rec = SessionRecorder()
    obs, _ = rec.reset(*env.reset(options={"user_id": "msc-0001"}))
    rec.step("Let me think about it.", *env.step("Let me think about it."))
    mid = trajectory_from_env(env)
    assert mid == rec.trajectory() and mid.metrics == {} and not (mid.terminated or mid.truncated)
    assert len(mid.messages) == 3 and len(mid.rewards) == 1


def test_token_mask_equals_the_tokens_of_each_piece_tokenized_alone(session, tokenizer):
    """Expected ids and mask built without offsets: ChatML writes each message as the pieces
    ``<|im_start|>ROLE\\n``, the content, ``<|im_end|>``, ``\\n``; each piece is tokenized on its own and
    only an assistant's content and its ``<|im_end|>`` are trained."""
    _, rec, _ = session
    traj = rec.trajectory(system_prompt=SYSTEM, tokenizer=tokenizer)
    ids, mask = [], []
    for m in traj.messages:
        trained = int(m["role"] == "assistant")
        for piece, bit in ((f"<|im_start|>{m['role']}\n", 0), (m["content"], trained), ("<|im_end|>", trained),
                           ("\n", 0)):
            piece_ids = tokenizer(piece, add_special_tokens=False)["input_ids"]
            ids += piece_ids
            mask += [bit] * len(piece_ids)
    assert traj.input_ids == ids
    assert traj.token_loss_mask == mask
    assert traj.input_ids == tokenizer.apply_chat_template(traj.messages, tokenize=True, return_dict=True)["input_ids"]
    assert 0 < sum(mask) < len(mask)


def test_token_mask_equals_hugging_face_generation_mask(session, tokenizer):
    _, rec, _ = session
    traj = rec.trajectory(system_prompt=SYSTEM, tokenizer=tokenizer)
    hf = tokenizer.apply_chat_template(traj.messages, chat_template=CHATML_TAGGED, tokenize=True, return_dict=True,
                                       return_assistant_tokens_mask=True)
    assert hf["input_ids"] == traj.input_ids
    assert list(hf["assistant_masks"]) == traj.token_loss_mask


def test_token_mask_with_characters_outside_ascii(tokenizer):
    """Byte-level tokens of one character (emoji, CJK) carry that character's offsets: a reply made of
    them is trained whole, and the user's are not."""
    msgs = [{"role": "user", "content": "Réponds en français 🙂"},
            {"role": "assistant", "content": "🙂 答案是 4 — voilà."},
            {"role": "user", "content": "merci 🎉"}, {"role": "assistant", "content": "De rien ✨"}]
    out = tokenize_chat(tokenizer, msgs)
    hf = tokenizer.apply_chat_template(msgs, chat_template=CHATML_TAGGED, tokenize=True, return_dict=True,
                                       return_assistant_tokens_mask=True)
    assert out.input_ids == hf["input_ids"] and out.loss_mask == list(hf["assistant_masks"])
    assert [tokenizer.decode(out.input_ids[s:e]) for s, e in out.spans] == [
        "🙂 答案是 4 — voilà.<|im_end|>", "De rien ✨<|im_end|>"]


def test_trained_spans_decode_to_the_replies(session, tokenizer):
    _, rec, plain = session
    traj = rec.trajectory(tokenizer=tokenizer)
    assert len(traj.token_spans) == len(plain["replies"])
    covered = set()
    for (start, end), reply in zip(traj.token_spans, plain["replies"]):
        assert tokenizer.decode(traj.input_ids[start:end]) == reply + "<|im_end|>"
        assert tokenizer.convert_ids_to_tokens(traj.input_ids[start - 1]) == "Ċ"  # the header's newline: not trained
        covered.update(range(start, end))
    assert covered == {i for i, bit in enumerate(traj.token_loss_mask) if bit}
    untrained = tokenizer.decode([t for t, bit in zip(traj.input_ids, traj.token_loss_mask) if not bit])
    assert all(text in untrained for text in [plain["opening"], *plain["reactions"]])
    assert not any(reply in untrained for reply in plain["replies"])


def test_template_with_bos_default_system_and_trimmed_content(session, llama3_tokenizer):
    """Tokens the template adds once (begin-of-text, a default system message) and around each message
    (headers, <|eot_id|>), and content it rewrites (trim): replies with stray whitespace."""
    tok = llama3_tokenizer
    _, rec, plain = session
    messages = [m if m["role"] != "assistant" else {**m, "content": f"  {m['content']}\n\n"}
                for m in rec.trajectory().messages]
    out = tokenize_chat(tok, messages, end_of_turn="<|eot_id|>")
    hf = tok.apply_chat_template(messages, chat_template=LLAMA3, tokenize=True, return_dict=True,
                                 return_assistant_tokens_mask=True)
    assert out.text.startswith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nDefault system prompt.")
    assert out.input_ids == hf["input_ids"] and out.loss_mask == list(hf["assistant_masks"])
    decoded = [tok.decode(out.input_ids[s:e]) for s, e in out.spans]
    assert decoded == [r.strip() + "<|eot_id|>" for r in plain["replies"]]


def test_template_without_end_of_turn_token_trains_the_content(tokenizer):
    """A plain template (no special tokens): the trained part is the rendered content, without the
    newlines the template writes after it."""
    plain = ("{% for m in messages %}{{ m['role'] }}:\n{{ m['content'] }}\n\n{% endfor %}"
             "{% if add_generation_prompt %}assistant:\n{% endif %}")
    msgs = [{"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": "It is 4."},
            {"role": "user", "content": "thanks"}]
    out = tokenize_chat(tokenizer, msgs, chat_template_kwargs={"chat_template": plain}, end_of_turn="")
    assert out.text == "user:\nWhat is 2 + 2?\n\nassistant:\nIt is 4.\n\nuser:\nthanks\n\n"
    (s, e), = out.spans
    assert tokenizer.decode(out.input_ids[s:e]) == "It is 4."
    assert sum(out.loss_mask) == e - s


def test_straddling_token_is_not_trained_and_is_logged(tokenizer, caplog):
    """A generation prompt ending in a space merges with the reply's first word: " answer" is one token
    of the tiny vocabulary, so it belongs to both; it is not trained, and the export says so."""
    spaced = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
              "{% if add_generation_prompt %}assistant: {% endif %}")
    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "answer is 4."}]
    assert tokenizer.tokenize(" answer") == ["Ġanswer"]
    with caplog.at_level(logging.WARNING, logger="personalization_env.export"):
        out = tokenize_chat(tokenizer, msgs, chat_template_kwargs={"chat_template": spaced}, end_of_turn="")
    (s, e), = out.spans
    assert tokenizer.convert_ids_to_tokens(out.input_ids[s - 1]) == "Ġanswer" and out.loss_mask[s - 1] == 0
    assert tokenizer.decode(out.input_ids[s:e]) == " is 4." and "straddle" in caplog.text
    caplog.clear()
    clean = tokenize_chat(tokenizer, [msgs[0], {"role": "assistant", "content": "It is 4."}],
                          chat_template_kwargs={"chat_template": spaced}, end_of_turn="")  # " It" is "Ġ" + "It"
    assert tokenizer.decode([t for t, b in zip(clean.input_ids, clean.loss_mask) if b]) == "It is 4."
    assert "straddle" not in caplog.text


def test_template_that_rewrites_earlier_messages_is_refused(tokenizer):
    """A template that renders an earlier reply differently once later messages follow (as templates
    that drop earlier reasoning do) cannot be attributed token by token: refused, not mis-masked."""
    hides = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
             "{% if m['role'] == 'assistant' and not loop.last %}(earlier reply){% else %}{{ m['content'] }}{% endif %}"
             "<|im_end|>{{ '\n' }}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    msgs = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]
    with pytest.raises(ValueError, match="message 1"):
        tokenize_chat(tokenizer, msgs, chat_template_kwargs={"chat_template": hides})


def test_trajectory_round_trips_through_json(session, tokenizer):
    _, rec, _ = session
    traj = rec.trajectory(system_prompt=SYSTEM, tokenizer=tokenizer)
    assert Trajectory.from_dict(json.loads(json.dumps(traj.to_dict()))) == traj


def test_recorded_steps_must_be_one_session():
    env = MultiSessionCollabEnv(n_users=1, tasks_per_dataset=5, max_turns=2)
    obs, info = env.reset(seed=0)
    steps = [("one", *env.step("one"))]
    assert steps[0][3] or steps[0][4]  # max_turns=2: the first reply's reaction ends the session
    with pytest.raises(ValueError, match="follows the end"):
        trajectory_from_steps(obs, info, steps + steps)
    with pytest.raises(RuntimeError, match="before reset"):
        SessionRecorder().step("one", *steps[0][1:])
    with pytest.raises(ValueError, match="no session"):
        trajectory_from_env(MultiSessionCollabEnv(n_users=1, tasks_per_dataset=5))


def test_importing_the_export_module_stays_light():
    code = ("import sys, personalization_env.export; "
            "print(sorted(m for m in ('torch', 'transformers', 'trl') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
