"""The deterministic offline generator: no language model, so CI and a laptop need none.

Instructions come from platform-aware templates ("Write a LinkedIn post about ...", "In your
newsletter, explain ..."), evaluation questions from question templates ("What do you say about
...?"), both filled with the title, the heading path and keyphrases: candidate phrases of the
section ranked by their embedding's similarity to the section's (the packaged
embedding model), the two best that do not repeat each other.

The `rejected` side is NOT a model's answer: it is a generic, deterministic answer assembled
from stock sentences around the same keyphrases, length-matched to the author's text. The
generator's name says so (`offline-generic-rejected`), so nobody mistakes it for model output.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from twin.datasets.generators.base import AnswerPrompt, Generated, SectionPrompt, Usage

TEMPLATE_VERSION = "1"
WORD_RE = re.compile(r"[A-Za-z][A-Za-z0-9'-]*")
CODE_RE = re.compile(r"```.*?```|`[^`\n]*`", re.DOTALL)
_STOPWORD_TEXT = (
    "a about above after again against all also am an and any are as at be because been before "
    "being below between both but by can could did do does doing down during each few for from "
    "further had has have having he her here hers him his how i if in into is it its itself "
    "just me more most my no nor not now of off on once only or other our ours out over own "
    "same she should so some such than that the their theirs them then there these they this "
    "those through to too under until up very was we were what when where which while who whom "
    "why will with would you your yours one two three first last next new get got make made use "
    "used using way ways thing things much many lot lots every even still well really already "
    "yes like "
)
STOPWORDS = frozenset(_STOPWORD_TEXT.split())
CANDIDATES = 8

TEMPLATES: dict[str, tuple[str, ...]] = {
    "linkedin": (
        "Write a LinkedIn post about {kp0} and {kp1}.",
        "Write a short LinkedIn post sharing what you learned about {kp0}.",
        "Draft a LinkedIn post on {topic}, touching on {kp1}.",
    ),
    "substack": (
        "In your newsletter, explain {kp0} and why {kp1} matters.",
        "Write a newsletter section on {topic}, covering {kp0}.",
    ),
    "medium": (
        'In a Medium article titled "{title}", write the part on {topic}, covering {kp0}.',
        "Explain {kp0} for a Medium article about {title}.",
    ),
    "blog": (
        'For your blog post "{title}", write the section on {topic}.',
        "Write a blog post passage explaining {kp0} and {kp1}.",
    ),
    "github": (
        "Write the {topic} part of the documentation for {title}, covering {kp0}.",
        "Explain {kp0} in the README of {title}.",
    ),
}
# Evaluation questions: a reader's question the section answers, naming what it is about. No
# platform, kind or date words, so the retrieval's self-query reads no filter into them.
QUESTION_TEMPLATES = (
    "What do you say about {kp0} and {kp1}?",
    'What does "{title}" say about {kp0}?',
    "Why does {kp0} matter when it comes to {kp1}?",
    "How do you think about {kp0}?",
)
GENERIC_SENTENCES = (
    "There are many factors to consider when it comes to {kp}.",
    "It is important to understand the basics of {kp} before making any decisions.",
    "Every situation is different, so the best approach depends on your specific needs.",
    "Many experts agree that {kp} plays a key role in modern technology.",
    "By following best practices, teams can achieve better results over time.",
    "It is always a good idea to start small and iterate as you learn more.",
    "Communication and collaboration are essential for success with {kp}.",
    "In conclusion, {kp} is a complex topic that deserves careful attention.",
    "With the right tools and mindset, anyone can make progress on {kp}.",
    "Ultimately, the goal is to deliver value while keeping things simple and effective.",
)


class OfflineGenerator:
    """Template instructions with embedding-ranked keyphrases; generic rejected answers."""

    name = "offline-generic-rejected"

    def __init__(self, embedder: Any) -> None:
        self.embedder = embedder
        self.usage = Usage()
        self._phrase_vectors: dict[str, np.ndarray] = {}

    @property
    def config(self) -> dict[str, object]:
        return {
            "kind": "offline",
            "templates": TEMPLATE_VERSION,
            "embedding_model": self.embedder.model_name,
            "rejected": "generic-template",
        }

    # --- instructions ---------------------------------------------------------------------

    def instructions(self, sections: Sequence[SectionPrompt]) -> list[Generated]:
        if not sections:
            return []
        phrases = self.keyphrases(sections)
        out = []
        for section, kps in zip(sections, phrases, strict=True):
            self.usage.calls += 1
            out.append(Generated(section.key, text=self._instruction(section, kps)))
        return out

    def questions(self, sections: Sequence[SectionPrompt]) -> list[Generated]:
        if not sections:
            return []
        out = []
        for section, kps in zip(sections, self.keyphrases(sections), strict=True):
            self.usage.calls += 1
            out.append(Generated(section.key, text=self._question(section, kps)))
        return out

    def _question(self, section: SectionPrompt, kps: list[str]) -> str:
        title = section.title.strip() or "your project"
        kp0 = kps[0] if kps else title.lower()
        kp1 = kps[1] if len(kps) > 1 else title.lower()
        pick = int(hashlib.sha256(f"question:{section.key}".encode()).hexdigest()[:8], 16)
        template = QUESTION_TEMPLATES[pick % len(QUESTION_TEMPLATES)]
        return template.format(title=title, kp0=kp0, kp1=kp1)

    def _instruction(self, section: SectionPrompt, kps: list[str]) -> str:
        title = section.title.strip() or "your project"
        heading = section.heading_path[-1] if section.heading_path else ""
        if heading.startswith("part "):
            heading = section.heading_path[-2] if len(section.heading_path) > 1 else ""
        topic = heading if heading and "/" not in heading else (kps[0] if kps else title)
        kp0 = kps[0] if kps else topic
        kp1 = kps[1] if len(kps) > 1 else title.lower()
        options = TEMPLATES.get(section.platform, TEMPLATES["blog"])
        pick = int(hashlib.sha256(section.key.encode()).hexdigest()[:8], 16) % len(options)
        return options[pick].format(title=title, topic=topic, kp0=kp0, kp1=kp1)

    def keyphrases(self, sections: Sequence[SectionPrompt], top: int = 2) -> list[list[str]]:
        """The `top` keyphrases of each section, by embedding similarity with diversity."""
        candidates = [candidate_phrases(s.text) for s in sections]
        # Short texts only (phrases and titles, shared across sections and cached): a section's
        # own vector is the centroid of its phrases and its title, so no long text is embedded.
        titles = [s.title.strip().lower() for s in sections]
        wanted = {p for c in candidates for p in c} | {t for t in titles if t}
        missing = sorted(wanted - self._phrase_vectors.keys())
        if missing:
            for phrase, vec in zip(
                missing, self.embedder.encode(missing, batch_size=256), strict=True
            ):
                self._phrase_vectors[phrase] = vec
        section_vecs = []
        for cands, title in zip(candidates, titles, strict=True):
            parts = [self._phrase_vectors[c] for c in cands]
            if title:
                parts.append(self._phrase_vectors[title] * max(1, len(parts) // 2))
            centroid = np.sum(parts, axis=0) if parts else np.zeros(1)
            section_vecs.append(centroid / (np.linalg.norm(centroid) or 1.0))
        result = []
        for cands, svec in zip(candidates, section_vecs, strict=True):
            if not cands:
                result.append([])
                continue
            vecs = np.stack([self._phrase_vectors[c] for c in cands])
            scores = vecs @ svec
            chosen: list[int] = []
            for _ in range(min(top, len(cands))):
                best, best_score = -1, -np.inf
                for i in range(len(cands)):
                    if i in chosen:
                        continue
                    redundancy = max((float(vecs[i] @ vecs[j]) for j in chosen), default=0.0)
                    score = 0.7 * float(scores[i]) - 0.3 * redundancy
                    if score > best_score:
                        best, best_score = i, score
                chosen.append(best)
            result.append([cands[i] for i in chosen])
        return result

    # --- rejected answers -----------------------------------------------------------------

    def answers(self, prompts: Sequence[AnswerPrompt]) -> list[Generated]:
        out = []
        for prompt in prompts:
            self.usage.calls += 1
            out.append(Generated(prompt.key, text=generic_answer(prompt)))
        return out


def candidate_phrases(text: str, limit: int = CANDIDATES) -> list[str]:
    """Up to `limit` 1-3 word phrases without stopwords at their edges, most frequent first."""
    words = WORD_RE.findall(CODE_RE.sub(" ", text))
    counts: Counter[str] = Counter()
    first: dict[str, int] = {}
    for n in (1, 2, 3):
        for i in range(len(words) - n + 1):
            gram = words[i : i + n]
            low = [w.lower() for w in gram]
            if low[0] in STOPWORDS or low[-1] in STOPWORDS or any(len(w) < 3 for w in low):
                continue
            if n == 1 and (len(low[0]) < 5 or (gram[0][0].isupper() and i == 0)):
                continue
            phrase = " ".join(low)
            counts[phrase] += 1
            first.setdefault(phrase, i)
    ranked = sorted(counts, key=lambda p: (-counts[p] * len(p.split()), first[p], p))
    return ranked[:limit]


def generic_answer(prompt: AnswerPrompt) -> str:
    """Stock sentences around the prompt's subject, within 10% of `target_chars` when it can."""
    subject = _subject(prompt.prompt)
    seed = int(hashlib.sha256(prompt.key.encode()).hexdigest()[:8], 16)
    sentences: list[str] = []
    length = 0
    i = 0
    while length < prompt.target_chars * 0.95 and i < 200:
        sentence = GENERIC_SENTENCES[(seed + i) % len(GENERIC_SENTENCES)].format(kp=subject)
        if length and length + len(sentence) + 1 > prompt.target_chars * 1.1:
            break
        sentences.append(sentence)
        length += len(sentence) + 1
        i += 1
    return " ".join(sentences)


def _subject(prompt: str) -> str:
    match = re.search(r"(?:about|explain|on|covering) (.+?)(?:[,.?]|$)", prompt)
    return (match.group(1) if match else "this topic").strip() or "this topic"
