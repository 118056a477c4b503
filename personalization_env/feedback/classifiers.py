"""Classifiers that turn a user's message into a feedback label.

- ``oracle``: the simulator's own (true) label, passed in by the env.
- ``keyword``: a whole-word lexical heuristic built from general patterns of how people write
  feedback: corrections stated as facts (a wrong value, "that crashes", "you mixed up X and Y",
  "X, not Y"), confusion asked as a question ("wait, why ...?"), praise without stock words ("that did
  it"), follow-up questions that show progress ("ok, and how would I ...?"), topic shifts, and wishes
  about the reply's form (requests, reminders, conditions around a style word). Its vocabulary is
  :data:`LEXICON`; none of it is copied from the simulator's wording (tests/test_language.py). The
  published VARS heuristic matched phrases as substrings, so "no" fired inside "know"; this one does not.

Accuracy against the rule simulator's true labels (an upper bound) and on hand-written messages is
measured by ``benchmarks/feedback_accuracy.py``.
"""

from __future__ import annotations

import abc
import re
from functools import lru_cache
from typing import Any, Mapping, Sequence

from personalization_env.language import (CONDITION_ANYWHERE, CONDITION_CLAUSE, CONDITION_HEAD, IMPERATIVE_RE,
                                          NEGATION_WORDS, REQUEST_FRAME, PhraseSet, has_negation, split_sentences, standard_spelling,
                                          strip_openers)
from personalization_env.naming import did_you_mean


class FeedbackClassifier(abc.ABC):
    """Labels a user message (see :data:`~personalization_env.feedback.labels.LABELS`)."""

    name: str = "classifier"

    @abc.abstractmethod
    def classify(self, message: str, context: Mapping[str, Any] | None = None) -> str:
        """Label of ``message``. ``context`` may carry ``oracle_label`` and ``previous_reply``."""

    def classify_batch(self, messages: Sequence[str], contexts: Sequence[Mapping[str, Any] | None] | None = None) -> list[str]:
        """Labels of several messages (default: one at a time)."""
        contexts = contexts if contexts is not None else [None] * len(messages)
        return [self.classify(m, c) for m, c in zip(messages, contexts)]


class OracleClassifier(FeedbackClassifier):
    """Returns the simulator's true label from ``context["oracle_label"]``."""

    name = "oracle"

    def classify(self, message: str, context: Mapping[str, Any] | None = None) -> str:
        if not context or "oracle_label" not in context:
            raise ValueError("the oracle classifier needs context['oracle_label'] (only the env has it); use 'keyword' elsewhere")
        return str(context["oracle_label"])


# --------------------------------------------------------------------------------------------------
# The keyword classifier's vocabulary: how people in general write each kind of feedback. Word slots
# ({it}, {be} ...) stand for any of their words; every lexicon is listed in LEXICON.

_SLOTS: dict[str, tuple[str, ...] | str] = {
    "it": ("it", "that", "this", "the answer", "your answer", "the result", "the final answer", "the number",
           "the math", "the code", "the function", "the output", "the total", "the value", "step 2", "the last step",
           "that step", "this step", "that part", "the sum", "the calculation", "the logic", "your math"),
    "its": ("it's", "that's", "this is", "it is", "that is", "thats", "its", "that was", "it was", "this was"),
    "be": ("is", "was", "looks", "seems", "sounds"),
    "num": r"-?\$?\d[\d,./]*%?|\(?[a-e]\)",
    "dont": ("don't", "do not", "dont", "didn't", "did not", "can't", "cannot", "still don't"),
    "you": ("you", "u", "you've", "you have", "you're", "you are"),
}

# A statement that the previous answer is wrong: a verdict, a wrong value, a failure, a mix-up, a
# contradiction, doubt or a request to check. Bare "wrong"/"mistake" also occur in style requests
# ("tell me why the other options are wrong"), so cues inside a request are not counted (see below).
_CORRECTION = PhraseSet((
 "wrong", "incorrect", "not correct", "not right", "isn't right", "ain't right", "inaccurate", "mistaken",
 "{its} false", "not true", "a mistake", "a typo", "an error", "a bug", "it fails", "this fails", "that fails",
 "it failed", "{its} broken", "it crashed", "it throws", "it hangs", "it freezes", "it skips", "an error",
 "it errors", "errors out", "an off-by-one", "off by one", "off by", "miscalculated", "miscalculation",
 "miscounted", "misread", "misunderstood the question", "mixed up", "mix up", "mixed-up", "mixing up",
 "doesn't match", "does not match", "don't match", "doesn't check out", "doesn't work", "does not work",
 "didn't work", "not working", "won't work", "crashes", "traceback", "exception", "segfault", "infinite loop",
 "syntax error", "type error", "outdated", "deprecated", "doesn't exist", "does not exist", "no such",
 "not a thing", "made up", "made-up", "hallucinated", "isn't real", "not real", "misspelled", "spelled wrong",
 "typo in", "removed in", "no longer", "{you} confused", "{you} mixed", "{you} swapped", "{you} counted",
 "{you} got {num}", "you're thinking of", "you're describing", "that describes", "you answered a different",
 "wrong one", "the other one", "the old version", "only works for", "only true for", "counterexample", "you missed",
 "overwrites", "double counts", "counts twice", "one issue", "an issue", "a problem with", "nothing happens",
 "prints nothing", "returns nothing", "no output", "gives nothing", "question wants", "question says",
 "question asks", "problem says", "problem wants", "assignment says", "task says", "key says", "teacher says",
 "teacher said", "calculator says", "calculator gives", "compiler says", "docs say", "documentation says",
 "same mistake", "the mistake", "mistake again", "breaks when", "it breaks", "this breaks", "dead link",
 "broken link", "careful,", "watch out", "got it backwards", "have it backwards", "it's backwards", "is backwards",
 "wrong way around", "sure about that", "certain about", "you have {num}", "answer is {num}", "answer should be",
 "should equal", "that's a different", "that's the wrong", "contradicts", "contradiction", "contradictory",
 "inconsistent", "you said earlier", "earlier you said", "before you said", "you just said", "you said it was",
 "should be", "should have been", "should've been", "shouldn't be", "is actually", "{its} actually",
 "actually {its}", "{be} actually", "the answer is actually", "you sure", "is that right", "is that correct",
 "is this right", "is this correct", "double-check", "double check", "recheck", "re-check", "check again",
 "check that again", "check your", "can't be right", "cannot be right", "can't be", "cannot be", "can't possibly",
 "that's not it", "that's not what", "not what i got", "i got {num}", "i get {num}", "i'm getting", "i am getting",
 "i keep getting", "i calculated", "textbook says", "the book says", "the key says", "my teacher says", "nope",
 "nah", "not quite", "you made a", "you forgot", "you missed", "you dropped", "you skipped a", "you confused",
 "you misread", "you misunderstood", "you used the wrong", "wrong formula", "wrong sign", "wrong answer",
 "wrong value", "wrong number", "makes no sense for", "not possible", "{num}, not {num}", "{num} not {num}",
 "{num} instead of {num}", "i don't think so", "i doubt", "doubt that", "hmm, no", "no, {its}", "no that's",
 "no it's", "that's off", "way off", "not even close", "you messed up", "messed up", "screwed up", "bugged",
 "buggy", "returns the wrong", "returns none", "prints the wrong", "gives the wrong", "outputs the wrong",
 "the tests fail", "test fails", "index out of range", "out of bounds", "you left out", "is off", "are off",
 "seems off", "looks off", "times out", "never finishes", "never returns", "runs forever", "divides by zero",
 "division by zero", "divide by zero", "the wrong way round", "the opposite", "the book has", "the key has",
 "the solution says", "gives me {num}", "you computed", "you calculated", "you picked", "you chose",
 "question asked", "question asks for", "problem asked", "you wrote", "you put", "you typed", "you said",
 "you have it as", "shouldn't it", "should it be", "isn't it", "wouldn't it", "isn't that", "shouldn't that",
 "wasn't it", "doesn't it", "fails", "failing", "still fails", "still failing", "still broken", "still wrong",
 "still crashes", "still getting", "still get", "still gives", "still returns", "still prints", "still shows",
 "same error", "same output", "same result", "same problem", "same issue", "doesn't follow", "does not follow",
 "and got {num}", "and get {num}", "expected {num}", "i expected", "was expecting", "supposed to be",
 "supposed to return", "supposed to give", "isn't {num}", "is not {num}", "not equal", "doesn't equal", "never said",
 "didn't say", "doesn't say", "not convinced", "unconvinced", "skeptical", "sceptical", "was removed",
 "only handles", "only covers", "only checks", "only returns", "only considers", "only counts", "only supports", "{its} not how", "not how it works", "not how that works", "but got {num}", "it gives {num}", "is still {num}", "output is still",
), _SLOTS)
# an error name ("TypeError"), or a flat "No," before a statement of fact
_CORRECTION_RE = re.compile(r"\b(?:got|get|getting|throws?|threw|gives?|gave|says|said|shows|showed|prints|reports)"
                            r"\s+(?:me\s+)?(?:an?\s+)?[A-Z]\w*"
                            r"(?:Error|Exception)\b|^(?:no|nope|nah)\b[,.!]+\s+(?!thanks|thank|problem|worries|"
                            r"need|rush|worry|that's (?:fine|ok|okay|good))", re.IGNORECASE)
_CHECK_REQUEST = PhraseSet((
 "check", "recheck", "re-check", "double-check", "double check", "verify it", "verify that", "verify this", "fix",
 "correct {it}", "look again", "try again", "redo {it}", "recalculate", "recompute", "re-do", "re-examine",
), _SLOTS)
# Not understanding, said outright or asked as a question.
_CONFUSION = PhraseSet((
 "confused", "confusing", "lost", "lost me", "{dont} understand", "{dont} get it", "{dont} get why",
 "{dont} get how", "{dont} get what", "{dont} get the", "{dont} get this", "{dont} get that", "{dont} follow",
 "not following", "can't follow", "hard to follow", "unclear", "not clear", "isn't clear", "not sure what",
 "not sure how", "not sure why", "no idea what", "no idea how", "no idea why", "you mean", "what does that mean",
 "what does this mean", "what does it mean", "what's that mean", "what is meant", "mean by", "means here",
 "meaning of", "huh", "come again", "say that again", "how come", "where did", "where does", "where do",
 "how did you get", "how do you get", "how did you go from", "how does that follow", "why did you", "why would",
 "why is that", "why does", "why do we", "why is it", "wait, why", "but why", "why not", "doesn't make sense",
 "does not make sense", "makes no sense", "make sense of", "which is it", "which one", "what's the result",
 "what is the result", "so the answer is", "so is it", "what am i supposed", "clarify", "rephrase",
 "in simpler terms", "in plain english", "eli5", "over my head", "too advanced", "i'm stuck on", "stuck on the",
 "still stuck", "lost track", "went over my head", "i'm puzzled", "puzzled", "baffled", "scratching my head",
 "what happened to", "explain {it} again", "trouble", "having trouble", "struggling", "hard time", "slowly",
 "more slowly", "slower", "role of", "what does the", "what's it for", "different way", "another way",
 "other words", "the point of", "what's the point", "purpose of", "what for", "explain", "elaborate", "go through",
 "difference between", "am i missing", "missing something", "unpack", "break down", "walk me through",
 "like i'm five", "like i'm 5", "dumb it down", "layman's terms", "simple terms", "explain what", "explain why",
 "explain how", "explain that", "no clue", "clueless", "not a clue",
), _SLOTS)
# Satisfaction: thanks, approval, a problem solved, understanding reached.
_PRAISE = PhraseSet((
 "thanks", "thank you", "thx", "ty", "tysm", "cheers", "appreciate it", "appreciated", "much appreciated",
 "perfect", "great", "awesome", "excellent", "amazing", "fantastic", "brilliant", "wonderful", "superb", "lovely",
 "nice", "cool", "sweet", "neat", "beautiful", "helpful", "helped", "that helps", "very clear", "so clear",
 "crystal clear", "clear now", "clearer now", "much clearer", "much better", "love it", "love this", "that did it",
 "that does it", "did the trick", "does the trick", "works now", "it works", "that works", "that worked", "worked",
 "it runs", "runs now", "passes now", "fixed it", "that fixed", "solved it", "spot on", "nailed it", "bingo",
 "exactly right", "exactly it", "right on", "correct", "that's right", "sense now", "so much sense", "love how",
 "love the way", "loved", "clear answer", "clear explanation", "really clear", "that's it", "that's the one",
 "that was it", "i get it now", "see it now", "get it now", "now i get it", "i understand now", "now i understand", "now it makes sense",
 "makes sense now", "makes total sense", "makes perfect sense", "it clicked", "clicked", "that's clear",
 "good explanation", "great explanation", "good answer", "great answer", "well explained", "well done", "good job",
 "great job", "you're the best", "lifesaver", "life saver", "this is what i needed", "just what i needed",
 "exactly what i wanted", "exactly what i was looking for", "all good", "all set", "that's all i needed",
 "compiles", "it passes", "tests pass", "all tests pass", "that answers it", "that answers my question",
 "matches what i got", "i got the same", "same as mine", "matches my answer", "agrees with", "yay", "woohoo",
 "good", "very good", "so good", "solid", "elegant", "clever", "smart", "useful", "informative", "clearer",
 "works!", "worked!", "works perfectly", "worked perfectly", "problem solved", "all sorted", "sorted",
 "that explains", "explains it", "i see now", "now i see", "oh i see", "aha", "i like this", "i like that",
 "like it", "good point", "fair point", "checks out", "good stuff", "top notch", "bang on", "you nailed",
 "on point", "excellent work", "well put", "many thanks", "big help", "huge help", "much better", "way better",
 "a lot better", "learned something", "you rock", "you're a star", "you're amazing", "you're awesome", "legend",
 "hero", "genius", "exactly the", "finally", "finally works", "exactly", "precisely", "much obliged", "grateful",
 "kudos", "props", "flawless", "impeccable", "outstanding", "terrific", "stellar", "incredible", "phenomenal",
 "wow", "whoa", "omg", "all clear", "mystery solved", "that settles it", "i'm done", "we're good", "i'm good",
 "enjoyed", "saved me", "saved my", "made my day", "confirmed", "verified", "i agree", "agreed", "that'll do",
 "that will do", "does the job", "works for me", "works fine", "good enough", "what i was after", "just right",
 "ace", "appreciate", "chef's kiss", "slaps", "dope", "rad", "sublime", "couldn't be clearer", "crisp", "pure gold",
 "gold", "magic", "on the money", "you got it", "there we go", "there it is", "nice one", "good one", "love that",
 "mind blown", "like a charm", "nicely done", "well said", "so helpful", "great stuff", "brill", "cracking",
 "smashing", "wizard", "lightbulb", "finally get it", "finally understand", "understood perfectly", "clear as day",
 "all green", "tests are green", "it's working", "working now", "it's running", "you're right", "a+", "10/10", "ta",
 "matches", "match", "i learned", "makes it click", "makes it clear", "that's clear", "glad", "happy", "relieved",
 "pleased", "delighted", "thrilled", "stoked", "fab", "fabulous", "splendid", "marvelous", "marvellous", "handy",
 "slick", "owe you", "bless you", "godsend", "hooray", "thanks a bunch", "thanks a ton", "thanks a million", "clean",
 "tidy", "nicely", "beautifully", "great help", "really helps", "this helps", "helps a lot", "thank", "thankful",
), _SLOTS)
# Going on: acknowledgement plus a wish to continue, or a follow-up question that builds on the answer.
_PROGRESS = PhraseSet((
 "continue", "go on", "go ahead", "keep going", "carry on", "proceed", "next step", "next part", "what's next",
 "what next", "and then", "then what", "and after that", "what comes next", "move on", "let's move on", "onward",
 "onwards", "more please", "what about", "what if", "how about", "and how", "and what", "and if", "and why",
 "so how", "now how", "how would i", "how would you", "can i also", "could i also", "would that also",
 "does that also", "does this also", "does that mean", "so that means", "so then", "i see", "i follow",
 "following so far", "so far so good", "with you so far", "got that", "got it so far", "with you", "the rest",
 "rest of it", "let's do", "let's try", "harder one", "harder version", "next one", "one more", "now the",
 "now for", "onto", "onto the", "next up",
), _SLOTS)
_SHORT_PROGRESS = PhraseSet((
 "next", "continue", "more", "and", "then", "and then", "go", "onward",
), _SLOTS)
_NEGATED_PRAISE = re.compile(r"(?:\bnot|n['\u2019]t|\bnever|\bhardly)\s+(?:\w+\s+)?(?:helpful|helped|great|good|"
                             r"useful|perfect|clear|better|happy|glad|pleased|clean|thrilled)\b", re.IGNORECASE)
_ACKNOWLEDGE = PhraseSet((
 "yes", "yep", "yeah", "yup", "ok", "okay", "k", "sure", "alright", "all right", "right", "got it", "gotcha",
 "understood", "makes sense", "fair enough", "fine", "noted", "mhm", "uh huh", "right, so",
), _SLOTS)
# Leaving the current problem for another subject.
_TOPIC = PhraseSet((
 "unrelated", "off topic", "off-topic", "different question", "another question", "new question",
 "separate question", "side question", "random question", "something else", "something different",
 "change of topic", "change the subject", "changing the subject", "switching gears", "switch gears", "change gears",
 "on another note", "on a different note", "different topic", "new topic", "other topic", "by the way", "btw",
 "while i have you", "while we're at it", "let's talk about", "can we talk about", "forget that", "forget it",
 "forget about", "forget this", "scrap that", "instead, can", "another problem", "different problem", "new problem",
 "next problem", "next question", "other question", "totally different", "completely different", "moving on",
 "forget the", "separately", "random but", "leave this", "leave that", "ask about", "enough math", "enough of that",
 "enough of this", "enough about", "switch to", "switching to", "change topics", "change topic", "changing topics",
 "switching topics", "switch topics", "on a side note", "i have a question", "i've got a question",
 "i also have", "i have another", "another thing", "one more question", "unrelated question", "new task",
 "something new",
), _SLOTS)
# Saying again what was asked before ...
_RESTATED = PhraseSet((
 "i said", "i asked for", "i asked you", "i told you", "i mentioned", "i already", "i've said", "i have said",
 "i've asked", "i've told you", "like i said", "as i said", "as i mentioned", "as i asked", "how many times",
 "we agreed", "you agreed", "i thought we", "i specifically", "i explicitly", "i clearly", "again with",
 "didn't i say", "did i not say", "didn't i ask", "didn't i tell you", "i thought i said", "i thought i asked",
), _SLOTS)
# ... or wanting a way of replying kept from now on.
_RESTATE_MARKERS = PhraseSet((
 "again", "once more", "one more time", "remember", "you keep", "keep forgetting", "still", "for the second time",
 "for the third time", "next time", "from now on", "going forward", "in future", "in the future", "from here on",
 "every time", "each time", "always", "never", "whenever", "any time", "anytime", "as usual", "like before",
 "like last time",
), _SLOTS)
# Frames that wrap a wish about the reply: requests and preferences ...
_REQUESTS = PhraseSet((
 "please", "pls", "plz", "could you", "can you", "would you", "will you", "could we", "can we", "would it",
 "can the", "could the", "can it", "could it", "i'd really like", "i'd really prefer", "i'd much prefer",
 "i'd much rather", "i really want", "i really need", "i really prefer", "i'd like", "i would like", "i'd love",
 "i'd prefer", "i prefer", "prefer", "preferred", "i'd rather", "i would rather", "i'd appreciate",
 "i would appreciate", "i want you", "i want it", "want the", "i want a", "i want an", "i want more", "i want less",
 "i want just", "i want only", "i wanted", "i need you", "i need it", "need the", "i need a", "i need an",
 "i need more", "i need less", "i need just", "i need only", "i learn better", "works better for me",
 "works best for me", "helps me", "would help", "would be great", "would be better", "would make", "it'd be",
 "just the", "only the", "make sure", "be sure to", "you should", "you need to", "you must", "you have to",
), _SLOTS)
# ... a wish framed as wanting something, not wanting to do something ("I want thorough explanations", but
# not "I need to leave") ...
_WANTS = re.compile(r"\bi\s+(?:really\s+)?(?:want|need|prefer)\b(?!\s+to\b)", re.IGNORECASE)
# a standing adverb between a request frame and its verb ("could you always finish with ..."; "can you also
# show me ...?" stays a follow-up question)
_ADVERB = re.compile(r"^(?:always|from\s+now\s+on)\s+", re.IGNORECASE)
# asking to be consulted is no request to re-check the answer ("check with me before moving on", "check in")
_CONSULT = re.compile(r"\bcheck\s+(?:in|(?:back\s+)?with)\b", re.IGNORECASE)
# ... and evaluations of the reply's form ("too long", "all the fluff", "three sentences tops").
_EVALUATIONS = PhraseSet((
 "too", "way too", "so much", "so many", "a lot", "lots of", "all the", "all these", "all this", "less", "more",
 "instead", "rather than", "without", "i can't stand", "i hate", "i don't like", "i don't need", "i don't want",
 "annoying", "unnecessary", "not needed", "not necessary", "not a fan", "hard to", "tops", "max", "at most",
 "at least", "maximum", "minimum", "matters", "important to me", "would be", "easier", "i care about", "keep",
 "ugh", "i like", "i find",
), _SLOTS)
# A clause that forbids something ("don't ...", "no need to ...", "stop ...").
_PROHIBITION = re.compile(r"^(?:(?:please|pls|just|and|also|but)\s+)*(?:don['\u2019]?t|do\s+not|never(?!\s+mind)|"
                          r"no\s+need|no\s+more|no\s+(?!problem|worries|worry|idea|clue|thanks|way|wonder|doubt|rush)"
                          r"(?=\w)|"
                          r"stop|quit|avoid|skip|enough\s+with|cut\s+(?:out|the)|lose\s+the|ditch)\b",
                          re.IGNORECASE)
# A correctness word that a negation turns into a verdict ("that doesn't look right", "not quite true").
_VERDICT = PhraseSet((
 "right", "correct", "true", "accurate", "add up", "adds up", "match", "matches", "work", "works", "check out",
 "checks out", "possible", "plausible", "realistic", "include", "includes", "satisfy", "satisfies", "hold", "holds",
 "fit", "fits", "compile", "compiles", "run", "runs", "pass", "passes", "terminate", "terminates", "halt", "halts",
 "finish", "finishes", "account for", "handle", "handles", "consider", "cover", "covers",
), _SLOTS)
# An understanding verb that a negation turns into confusion ("I don't get why", "not sure I follow").
_UNDERSTAND = PhraseSet((
 "understand", "follow", "get it", "get this", "get that", "get why", "get how", "get what", "get where",
 "getting it", "getting this", "getting that", "following", "see why", "see how", "see where", "see what",
 "know what", "know why", "know how", "sure what", "sure how", "sure why", "sure where", "sure i", "clear", "grasp",
 "make sense of", "figure out", "see", "makes sense", "make sense", "makes any sense",
), _SLOTS)
# Doubt: with a negation, a belief that contradicts the answer ("pretty sure Paris isn't in Germany").
_DOUBT = PhraseSet((
 "pretty sure", "fairly sure", "quite sure", "i'm sure", "i believe", "i thought", "last i checked",
 "as far as i know", "afaik", "surely", "i think", "think",
), _SLOTS)
# The user correcting their own message is no verdict on the reply.
_SELF_CORRECTION = PhraseSet((
 "i messed up the", "i made an error", "had a typo", "made a typo", "i typed", "i mistyped", "my typo",
 "a typo on my", "my bad", "my mistake", "i meant", "i wrote the", "i misread", "i miscopied", "i copied",
 "i should have said", "i gave you the wrong",
), _SLOTS)
# a question about a term ("what's a lemma?"), between two options ("is it 5 or 6?", "which one ...?"), or a
# bare "what?"
_CONFUSED_QUESTION = re.compile(r"^(?:what(?:['\u2019]s|\s+is|\s+are)\s+(?:exactly\s+)?"
                                r"(?!(?:an?\s+|the\s+)?"
                                r"(?:next|following|up|else|new|plan|step|part|stage|phase|question)\b)"
                                r"(?:an?\s+(?:[\w-]+\s*){1,2}|(?:the\s+)?[\w-]+|'[^']+'|\"[^\"]+\")\s*\?|"
                                r"what\s+exactly\b.*|(?:is|was|are|should|do|does|so\s+do|so\s+is)\b.*\bor\b.*|"
                                r"which\b.*|(?:what|huh|eh|pardon|sorry)\s*[?!.]*)$", re.IGNORECASE)
# a why-question, or how something works or came about ("why square it?", "how does that work?")
_WHY = re.compile(r"^(?:but\s+|and\s+|so\s+)?(?:why\b|how\s+(?:does|did|is|are|was|were|come|on earth)\b|"
                  r"how\s+(?:do|can|would)\s+(?:you|we)\s+(?:know|tell)\b|"
                  r"is\s+(?:that|this|it)\s+because\b)", re.IGNORECASE)
# a question that refers back to the conversation (a pronoun or a continuation word): a follow-up
_ANAPHORA = re.compile(r"\b(?:it|this|that|these|those|they|them|the same|same|here|there|then|also|too|instead|"
                       r"part|step|steps|case|version|one|ones|result|answer|formula|equation|function|code|example|"
                       r"method|approach|solution|next|after|further|more|else|and|so|ok|okay|if|"
                       r"what about|what if)\b",
                       re.IGNORECASE)
# asking what a word means, anywhere ("could you break down what 'amortized' means")
_MEANING = re.compile(r"\bwhat\b.{0,50}\bmean(?:s|t)?\b", re.IGNORECASE)
# a new subject: "a different exercise", "another problem", "next question"
_NEW_SUBJECT = re.compile(r"\b(?:another|different|new|next|other|separate|unrelated)\s+(?:kind\s+of\s+)?"
                          r"(?:exercise|problem|question|topic|subject|task|assignment|homework)\b", re.IGNORECASE)
# "X, not Y" closing a statement ("the quote is from Hamlet, not Macbeth")
# something the reply did, named by the user ("you listed 21", "you used the mean")
_YOU_DID = re.compile(r"\byou(?:['\u2019]ve)?\s+(?:listed|wrote|put|used|included|picked|chose|gave|added|forgot|"
                      r"missed|"
                      r"dropped|skipped|left\s+out|computed|calculated|assumed|treated|mixed|swapped|confused|switched|"
                      r"reversed|misread|ignored|misunderstood)\b", re.IGNORECASE)
_X_NOT_Y = re.compile(r"\w[\w'.)%-]*(?:,|\s+but|\s+and)\s+not\s+(?:a\s+|an\s+|the\s+)?[^\s,;]+\s*[.!?]*$",
                      re.IGNORECASE)
# a pointed question ("isn't it ln|x|?", "shouldn't the total be 40?")
_POINTED = re.compile(r"^(?:(?:is|are|does|do|was|were|would)\s+(?:it|that|this|there|they)\s+really\b|(?:isn|shouldn|wouldn|doesn|didn|wasn|aren|don|won|can)['\u2019]?t\b.*\?\s*$|"
                      r"did\s+you\s+(?:forget|miss|drop|skip|mix|confuse|swap|misread)\b)", re.IGNORECASE)
# a belief stated against the answer ("pretty sure it's 12", "I thought it should be 4")
_BELIEF = re.compile(r"\b(?:pretty|fairly|quite)\s+sure\b.*(?:\d|\bshould\b)|"
                     r"\bi\s+thought\b.*\b(?:was|is|should)\b.*\d",
                     re.IGNORECASE)
# praise by emoji alone ("👍", "🙏")
_PRAISE_EMOJI = re.compile("[\U0001F44D\U0001F64F\U0001F60A\U0001F600\U0001F603\U0001F604\U0001F601\U0001F389\u2764"
                           "\U0001F64C\U0001F4AF\u2705\U0001F973\U0001F525\U0001F44C\U0001F60D\U0001F44F\U0001F917]")
# asking for help with something: a question about a subject, not a wish about the reply's form
_HELP = re.compile(r"\bhelp\s+(?:me|us|with|on|\w+ing)\b", re.IGNORECASE)
# a sum worked out in the message ("7 times 8 is 56"): the user redoing the arithmetic
_ARITHMETIC = re.compile(r"\d\s+(?:times|plus|minus|divided\s+by)\s+-?\d+(?:\.\d+)?\s+(?:is|equals|makes)\s+-?\d",
                         re.IGNORECASE)
# an elongated interjection of understanding ("ohhh", "ahh", "aha")
_AHA = re.compile(r"^(?:o+h{2,}|a+h{2,}|a+ha+)\b", re.IGNORECASE)
_CLAUSE_WORDS = r"(?:why|how|what|where|when|whether|if|which|who|because|but|and|so|or)\b"
# a negation and the words it governs: up to five words, stopped by a word that opens another clause
# (the clause word itself is kept: "don't get where" is not understanding)
_NEGATION_SCOPE = re.compile(r"(?:(?<![\w'])(?:" + "|".join(NEGATION_WORDS) + r")(?![\w'])(?<!never(?=\s+mind))|n't)((?:\s+(?!" + _CLAUSE_WORDS
                             + r")[\w'/.+-]+){0,5}(?:\s+" + _CLAUSE_WORDS + ")?)", re.IGNORECASE)
# a negated statement that sets itself against the reply ("aspirin isn't an antibiotic though", "but
# that's not what ...")
_CONTRAST = re.compile(r"^(?:but|however|although|though|actually)\b|\b(?:though|actually)\s*[.!]*$",
                       re.IGNORECASE)
# "I don't think <a fact>": a hedged contradiction (but "I don't think I get it" is confusion)
_CONTRARY = re.compile(r"^(?:i\s+)?(?:don't|do\s+not|really\s+don't)\s+think\s+(?!(?:i|i'm|so)\b)\w",
                       re.IGNORECASE)
# a question asked without its question mark ("how do i center a div"): a question word, or an
# auxiliary verb before its subject, opening the clause
_QUESTION_START = re.compile(r"^(?:(?:how|what|why|where|when|which|who)(?:'s)?\b(?!\s+(?:a|an)\b)|"
                             r"(?:is|are|was|does|do|did|can|could|would|will|should|shouldn't|isn't|doesn't)\s+"
                             r"(?:it|this|that|there|i|you|we|the|my)\b)", re.IGNORECASE)
# the next step on the same problem: "now ...", "next, ...", "then ..."
_NEXT_STEP = re.compile(r"^(?:now|next|then|after\s+that|ok\s+now)\b(?![\s,]+(?:i|it)\s+(?:get|see|understand|"
                        r"makes?|works?|clicks?|runs?)\b)", re.IGNORECASE)
# words that point at a later part of the same problem ("walk me through the next part")
_LATER_PART = re.compile(r"\b(?:next|rest|remaining|following|last|final)\s+(?:part|step|bit|section|case|cases|"
                         r"question|one)\b|\bpart\s*\(?[b-h]\)?(?!\w)", re.IGNORECASE)
# a new task given as a command ("solve 3x + 5 = 20", "write a function that ..."): a new subject
# unless it refers back ("solve it the other way")
_NEW_TASK = re.compile(r"^(?:solve|prove|find|compute|calculate|integrate|differentiate|simplify|factor|factorise|"
                       r"factorize|evaluate|derive|implement|translate|convert|define|write\s+(?:me\s+)?(?:a|an)\s+"
                       r"(?:function|program|script|class|query|regex|proof|poem|essay|letter|paragraph|story|email|"
                       r"summary|test))\b", re.IGNORECASE)
# a word that refers back to the reply or the problem at hand ("solve it again", "that equation")
_BACK_REFERENCE = re.compile(r"\b(?:it|them|same|again|instead|this|these|those|above|that\s+(?:one|result|answer|"
                             r"function|code|equation|formula|number|step|part|expression))\b", re.IGNORECASE)
# a clause that names a new question and nothing else ("now a chemistry question")
_NAMES_QUESTION = re.compile(r"^(?:now\s+|and\s+)?(?:a|an)\s+(?:[\w-]+\s+)?(?:question|problem|exercise|puzzle|"
                             r"task)\b|\bi\s+(?:have|got|'ve\s+got)\s+(?:a|an|another|one\s+more)\s+(?:[\w-]+\s+){0,4}"
                             r"(?:question|problem|exercise|puzzle|task|riddle)\b", re.IGNORECASE)
# unhappy emoji: puzzlement, and disapproval
_CONFUSED_EMOJI = re.compile("[\U0001F615\U0001F914\U0001F635\U0001F616\u2753\U0001F928]")
_DISAPPROVING_EMOJI = re.compile("[\U0001F44E\u274C\U0001F612\U0001F644\U0001F620\U0001F621\U0001F624]")
_BARE_NO = re.compile(r"^(?:no+|nope|nah|wrong|incorrect)\s*[.!]*$", re.IGNORECASE)
_ASKS_FOR_ANSWER = re.compile(r"^(?:so\s+)?(?:what|which|where)\b.*\b(?:answer|result|solution)\b", re.IGNORECASE)
# What a wish about the reply is about: its format, length, tone, structure and extras.
_STYLE = PhraseSet((
 "bullet", "bullets", "bullet points", "bulleted", "list", "lists", "numbered", "number the", "numbering",
 "heading", "headings", "header", "headers", "section", "sections", "subheadings", "bold", "bolded", "italics",
 "markdown", "table", "tables", "latex", "tex", "typeset", "format", "formatting", "formatted", "layout",
 "structure", "structured", "explanation", "explanations", "code first", "before the code", "short", "shorter",
 "shortest", "brief", "briefer", "briefly", "concise", "succinct", "terse", "long", "longer", "length", "lengthy",
 "wordy", "verbose", "rambling", "ramble", "wall of text", "sentence", "sentences", "paragraph", "paragraphs",
 "words", "lines", "summary", "summarize", "summarise", "summarizing", "tl;dr", "tldr", "recap", "takeaway",
 "takeaways", "bottom line", "key points", "example", "examples", "analogy", "analogies", "intro", "introduction",
 "preamble", "filler", "fluff", "small talk", "pleasantries", "chit-chat", "chitchat", "emoji", "emojis", "tone",
 "polite", "politer", "friendly", "friendlier", "warm", "warmer", "formal", "casual", "blunt", "direct", "jargon",
 "plain english", "plain language", "simple words", "conversational", "narrative", "transitions", "flow", "choppy",
 "confidence", "how confident", "how sure", "steps", "each step", "every step", "reasoning", "working",
 "show your work", "answer first", "upfront", "up front", "comments", "commented", "docstring", "docstrings",
 "type hints", "type hint", "annotations", "variable names", "snake_case", "snake case", "camelcase", "camel case",
 "code block", "code blocks", "one block", "main guard", "usage example", "options", "alternatives", "approaches",
 "other ways", "trade-offs", "tradeoffs", "pros", "cons", "big picture", "intuition", "overview", "outline",
 "roadmap", "edge cases", "complexity", "big-o", "boxed", "box", "units", "decimals", "decimal places", "rounded",
 "suggestions", "suggest", "recommendations", "follow-up", "follow-ups", "check-in", "check in", "apologize",
 "apologise", "apologies", "apology", "apologizing", "sorry", "acknowledge", "verification", "verify",
 "sanity check", "premises", "conclusion", "assumptions", "define", "variables", "citations", "sources",
 "piece by piece", "in one go", "all at once", "at once", "bit by bit", "in chunks", "chunks", "incrementally",
 "everything at once", "hint", "hints", "encouragement", "encouraging", "cliches", "clichés", "hedging", "caveats",
 "disclaimers", "repetition", "repeating", "restate", "restating", "word count", "option letter", "the letter",
 "final answer", "equations", "math mode", "display", "indent", "indentation", "spacing", "whitespace", "font",
 "capitals", "caps", "exclamation", "exclamation marks", "detail", "details", "detailed", "depth", "thorough",
 "explain why", "justify", "justification", "why each", "what changed", "from scratch", "redo", "re-derive",
), _SLOTS)

_SUBORDINATE = re.compile(r"\b(?:if|whether|when|whenever|in case)\b.*$", re.IGNORECASE)
_SEGMENT = re.compile(r"[,:;]\s*|\s+(?:and|then)\s+", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|\s+[-–—]+\s+|\n+|,\s+(?:but|and|so)\s+", re.IGNORECASE)
# the finer cut the classifier reads a message with: also after a colon that ends no condition ("This
# doesn't compile: ..."), and before ", but/and/so", which stay with their clause as cues of contrast
# and continuation
_FEEDBACK_CUT = re.compile(r"(?<=[.!?;])\s+|\s+[-–—]+\s+|\n+|,\s+(?=(?:but|and|so)\s)", re.IGNORECASE)
_COLON = re.compile(r":\s+")
# a statement set against what came before ("..., but the dosage seems high", "except ...")
_CONTRAST_OPENER = re.compile(r"^(?:but|however|except|although|though)\b(?!\s+(?:thanks|thank|anyway|still|i\s+"
                              r"(?:get|see|think\s+i)))", re.IGNORECASE)
# saying outright that one is lost (outranks a plain request, a topic shift and weaker kinds: see _ORDER)
_LOST = PhraseSet(("confused", "confusing", "lost", "puzzled", "baffled", "no idea", "no clue", "over my head",
                   "makes no sense", "doesn't make sense", "does not make sense", "huh"), _SLOTS)

#: every lexicon of the keyword classifier, by name (a test checks none copies the simulator's wording)
LEXICON: dict[str, PhraseSet] = {
    "correction": _CORRECTION, "check_request": _CHECK_REQUEST, "confusion": _CONFUSION, "praise": _PRAISE,
    "progress": _PROGRESS, "short_progress": _SHORT_PROGRESS, "acknowledge": _ACKNOWLEDGE, "topic_shift": _TOPIC,
    "restated": _RESTATED,
    "restate_markers": _RESTATE_MARKERS,
    "requests": _REQUESTS, "evaluations": _EVALUATIONS, "verdict": _VERDICT, "understand": _UNDERSTAND, "doubt": _DOUBT,
    "self_correction": _SELF_CORRECTION,
    "style": _STYLE,
}

# sentence kinds, strongest first: a message takes the strongest kind of its sentences
_ORDER = ("neg_correction", "neg_constraint_restate", "lost", "restate_request", "topic_shift", "restate_weak", "neg_confusion", "question",
          "pos_progress", "new_question",
          "pos_praise", "ack", "neutral")
_RANK = {k: i for i, k in enumerate(_ORDER)}


def clauses(message: str) -> list[str]:
    """The clauses of a message: its sentences, cut again at dashes, semicolons and ', but/and/so'."""
    return [c.strip() for line in message.split("\n") for s in split_sentences(line) or [line]
            for c in _SENTENCE_END.split(s) if c and c.strip()]


def negation_scopes(core: str) -> str:
    """What the negations of ``core`` govern: the few words after each negation, up to a clause word
    ("I'm not sure why it works": the scope is "sure", and "works" lies outside it), joined by " | "."""
    return " | ".join(m.group(1) for m in _NEGATION_SCOPE.finditer(core))


def negated_understanding(core: str) -> bool:
    """Whether ``core`` says the user does not understand ("I don't get why", "not sure I follow")."""
    return _UNDERSTAND.search(negation_scopes(core)) is not None


def _feedback_clauses(message: str) -> list[str]:
    """The clauses the classifier reads: as :func:`clauses`, cut also after a colon that closes no
    condition ("This doesn't compile: missing ..."; "For proofs: ..." stays whole), with ", but/and/so"
    kept at the head of their clause (cues of contrast and continuation)."""
    out: list[str] = []
    for line in message.split("\n"):
        for sentence in split_sentences(line) or [line]:
            for part in _FEEDBACK_CUT.split(sentence):
                pieces = _COLON.split(part)
                for i, piece in enumerate(pieces):
                    if i and CONDITION_HEAD.match(strip_openers(pieces[i - 1])):
                        out[-1] = out[-1] + ": " + piece.strip()
                    elif piece.strip():
                        out.append(piece.strip())
    return [c for c in out if c]


def _says_wrong(clause: str, core: str, negated: bool) -> bool:
    """Whether a clause (``core``: without its openers and condition) states that the answer is wrong:
    a correction cue, or a correctness word under a negation ("that doesn't look right")."""
    if (_CORRECTION.search(clause) or _CORRECTION_RE.search(clause) or _CORRECTION_RE.search(core)
            or _YOU_DID.search(core) or _BARE_NO.match(core) or _POINTED.match(core) or _BELIEF.search(core)
            or _X_NOT_Y.search(core) or _ARITHMETIC.search(core) or _CONTRARY.search(core)):
        return True
    if not negated:
        return False
    scope = negation_scopes(core)
    return bool(_VERDICT.search(scope) or (_DOUBT.search(core) and not _UNDERSTAND.search(scope))
                or (_CONTRAST.search(core) and not _UNDERSTAND.search(scope) and not _NEGATED_PRAISE.search(core)))


def _starts_segment(pattern: re.Pattern[str], core: str) -> bool:
    """Whether some comma/colon segment of ``core`` starts with ``pattern`` ("As a teacher, tell me ...")."""
    return any(pattern.match(strip_openers(seg)) for seg in _SEGMENT.split(core) if seg)


def _starts_imperative(core: str) -> bool:
    """Whether some comma/colon segment of ``core`` starts with an imperative verb ("As a teacher, tell me ...")."""
    return _starts_segment(IMPERATIVE_RE, core)


#: fine kinds that only order clauses within a message, and the kind each stands for
_FINE_KINDS = {"lost": "neg_confusion", "restate_request": "neg_constraint_restate"}


def clause_kind(clause: str) -> str:
    """The kind of one clause of a message (see :func:`clauses`): a label, ``ack`` for a bare
    acknowledgement ("ok", "got it"), ``restate_weak`` for a request without a style word, ``question``
    or ``new_question`` for a question that does or does not refer back."""
    kind = _clause_kind(clause)
    return _FINE_KINDS.get(kind, kind)


@lru_cache(maxsize=1 << 15)
def _clause_kind(clause: str) -> str:
    """:func:`clause_kind`, with two finer kinds that decide between clauses of one message: ``lost``
    (saying outright that one does not follow) beats ``restate_request`` (a plain request about the
    form, with no reminder or condition) and every weaker kind of :data:`_ORDER`."""
    core = strip_openers(clause).strip()
    if not core:
        return "ack" if _ACKNOWLEDGE.search(clause) else "neutral"
    conditional = False
    m = CONDITION_CLAUSE.match(core)
    if m and len(core) > m.end():
        conditional, core = True, strip_openers(core[m.end():]).strip()
    conditional = conditional or CONDITION_ANYWHERE.search(core) is not None
    question = core.rstrip().endswith("?") or _QUESTION_START.match(core) is not None
    imperative = _starts_imperative(core)
    prohibition = _PROHIBITION.match(core) is not None
    request = (imperative or prohibition or _REQUESTS.search(core) is not None
               or _WANTS.search(core) is not None)
    framed = request or _EVALUATIONS.search(core) is not None
    style = _STYLE.search(core) is not None
    marked = _RESTATE_MARKERS.search(core) is not None
    n_words = len(core.split())
    negated = has_negation(core)
    lost = (negated and negated_understanding(core)) or _LOST.search(core) is not None
    if _WHY.match(core) and not marked:  # "why would we use a set here" asks for a reason
        return "neg_confusion"
    # praise of the form ("great explanation, thank you so much") is no wish about it
    praised = _PRAISE.pattern.match(core) is not None and not (request or marked or conditional)
    short = n_words <= 5 and not question
    if style and not praised and (framed or marked or conditional or short):
        if not (request or marked or conditional):  # "step 3 is wrong", "I don't get the explanation"
            if lost:
                return "lost"
            if _says_wrong(clause, core, negated):
                return "neg_correction"
        # a plain request about the form loses to saying one is lost ("can you give an example? I'm lost")
        return "restate_request" if request and not (marked or conditional) else "neg_constraint_restate"
    # "could you use ...?": a request asked as a question, with a verb that shapes a reply
    frame = REQUEST_FRAME.match(core) if question else None
    asks = frame is not None and IMPERATIVE_RE.match(_ADVERB.sub("", core[frame.end():])) is not None
    # under a condition or a reminder, any request frame states a wish ("after I point out a mistake: I
    # want to know what went wrong")
    wish = request or REQUEST_FRAME.match(core) is not None
    # (confusion words in a wish under a condition name what to explain: "after a mistake, explain what
    # went wrong")
    puzzled = lost or (_CONFUSION.search(core) is not None and not conditional)
    if (((conditional or marked) and wish and not question and not puzzled)
            or _RESTATED.search(clause)
            or ((conditional or marked) and asks and not puzzled)):
        return "neg_constraint_restate"
    if _SELF_CORRECTION.search(core):
        return "neutral"
    # a request to check or fix is a correction, but under a condition it is a standing wish ("fix the
    # error after I point out a mistake"); other requests, and wishes under a condition ("for
    # multiple-choice questions, say why the wrong answers are wrong"), do not say the answer is wrong
    if request or conditional:
        if _CHECK_REQUEST.search(_CONSULT.sub(" ", core)):
            return "neg_constraint_restate" if conditional else "neg_correction"
    elif _says_wrong(clause, core, negated):
        return "neg_correction"
    if _TOPIC.search(clause) or _NEW_SUBJECT.search(clause) or _NAMES_QUESTION.match(core):
        return "topic_shift"
    if _DISAPPROVING_EMOJI.search(clause):
        return "neg_correction" if not style else "neg_constraint_restate"
    if _NEW_TASK.match(core) and not _BACK_REFERENCE.search(core):
        return "new_question"
    if prohibition and not negated_understanding(core):  # "no code until you explain the idea"
        return "neg_constraint_restate"
    if request:  # "tell me to ask if anything is unclear" asks for something, it is not confused
        core = _SUBORDINATE.sub("", core)
    says_lost = negated and negated_understanding(core)
    if (_CONFUSION.search(core) or _MEANING.search(core) or says_lost or _WHY.match(core)
            or (question and _ASKS_FOR_ANSWER.search(core)) or _CONFUSED_QUESTION.match(core)
            or _CONFUSED_EMOJI.search(clause)):
        # asking to be walked through a later part is going on, not being lost
        if _LATER_PART.search(core) and not says_lost:
            return "pos_progress"
        return "lost" if lost else "neg_confusion"
    if prohibition:
        return "neg_constraint_restate"
    if (_PROGRESS.search(core) or (n_words <= 3 and _SHORT_PROGRESS.search(core))
            or (_starts_segment(_NEXT_STEP, core) and not _HELP.search(core))):
        return "pos_progress"
    praise = _PRAISE.search(core) or _PRAISE_EMOJI.search(core) or _AHA.match(clause)
    if praise and not question and not _NEGATED_PRAISE.search(core):
        return "pos_praise"
    helps = _HELP.search(core) is not None
    if request and (asks or not question) and not helps:
        return "restate_weak"  # a request with no style word: loses to a topic shift in the same message
    if question or helps:  # a follow-up question refers back to the answer; one that does not opens a new subject
        return "question" if _ANAPHORA.search(clause) else "new_question"
    if _CONTRAST_OPENER.match(clause) and n_words >= 3:  # "thanks, but the dose seems high for a child"
        return "neg_correction"
    if _ACKNOWLEDGE.search(clause):
        return "ack"
    return "neutral"


def is_correction(text: str) -> bool:
    """Whether ``text`` says the previous answer was wrong (some clause of its first paragraph is a
    correction: a verdict is said, while what follows a blank line is mostly quoted material, such as
    a problem statement with its own "not" and "wrong")."""
    first = standard_spelling((text or "").split("\n\n", 1)[0])
    return any(clause_kind(c) == "neg_correction" for c in _feedback_clauses(first))


class KeywordClassifier(FeedbackClassifier):
    """Labels a message from general patterns of how people write feedback (see :data:`LEXICON`).

    The message is split into clauses; each clause gets a kind, and the message takes the strongest
    (:data:`_ORDER`: correction > a wish about the form with a reminder or a condition > saying outright
    that one is lost > a plain request about the form > topic shift > a request without a style word >
    other confusion > a follow-up question > progress > a question that refers to nothing said before >
    praise). A clause that wraps
    a wish about the reply's form (a request, a preference, a prohibition, a condition or a reminder
    together with a style word) is a restatement; cues of a wrong answer inside such a request do not
    count ("tell me why the other options are wrong"). A follow-up question ("and if n is odd?") is
    progress, a question that does not refer back is a topic shift, a bare acknowledgement ("ok", "got
    it") is neutral. Words are matched on word boundaries ("no" never fires inside "know").

    Before the clauses are read, informal spellings are written out ("dont", "u", "thx": see
    :func:`~personalization_env.language.standard_spelling`). A correctness word counts as a verdict
    only inside the scope of a negation ("that doesn't look right", but not "I'm not sure why it
    works"); a negated statement set against the reply ("..., but it isn't ...", "... though") is a
    correction; saying outright that one is lost ("I'm lost", "I don't get it") beats a plain request
    about the form, a topic shift and a request without a style word in the same message ("can you give
    an example? I'm lost"), and loses to a correction and to a reminder or a condition.
    """

    name = "keyword"

    def classify(self, message: str, context: Mapping[str, Any] | None = None) -> str:
        return _classify(message or "")


@lru_cache(maxsize=1 << 15)  # simulated users repeat their messages
def _classify(message: str) -> str:
    kinds = [_clause_kind(c) for c in _feedback_clauses(standard_spelling(message))]
    best = min(kinds, key=_RANK.__getitem__, default="neutral")
    # a bare acknowledgement ("ok", "got it") carries no signal; a follow-up question is progress
    mapped = {"ack": "neutral", "lost": "neg_confusion", "restate_request": "neg_constraint_restate", "question": "pos_progress", "restate_weak": "neg_constraint_restate",
              "new_question": "topic_shift"}
    return mapped.get(best, best)


CLASSIFIERS: dict[str, type[FeedbackClassifier]] = {"oracle": OracleClassifier, "keyword": KeywordClassifier}


def make_classifier(name: str | FeedbackClassifier, **kwargs: Any) -> FeedbackClassifier:
    """Build a classifier: ``oracle``, ``keyword``, ``llm:<backend spec>`` or ``llm_local:<model>``
    (see :mod:`personalization_env.feedback.llm_judge`)."""
    if isinstance(name, FeedbackClassifier):
        return name
    family, _, rest = str(name).partition(":")
    if family in ("llm", "llm_local"):
        from personalization_env.feedback.llm_judge import LLMJudgeClassifier

        if family == "llm_local" and not rest:
            raise ValueError("the 'llm_local' judge needs the served model: 'llm_local:<model>'")
        return LLMJudgeClassifier(rest or "scripted", local=family == "llm_local", **kwargs)
    if name not in CLASSIFIERS:
        extra = did_you_mean(str(name), [*CLASSIFIERS, "llm", "llm_local"])
        raise ValueError(f"unknown feedback classifier {name!r}{extra} known: {sorted(CLASSIFIERS)}, "
                         f"'llm:<backend spec>', 'llm_local:<model>'")
    return CLASSIFIERS[name](**kwargs)
