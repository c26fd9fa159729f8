"""An optional LLM judge (any OpenAI-compatible chat endpoint): accuracy and style, 1-3 each,
with the LLM Engineer's Handbook rubric. Used only when `TWIN_JUDGE_URL` is set."""

from __future__ import annotations

import json
import re

RUBRIC = """You are an expert judge. Evaluate the quality of a given answer to an instruction
based on two criteria:
1. Accuracy: How factually correct is the information presented in the answer?
   1 (Poor): factual errors, inaccuracies or misleading information.
   2 (Good): mostly accurate, minor errors or omissions.
   3 (Excellent): highly accurate and comprehensive.
2. Style: Is the tone and writing style appropriate for a blog post or social media content?
   1 (Poor): too formal, uses some overly complex words.
   2 (Good): good balance of technical content and accessibility, still some formal words.
   3 (Excellent): perfectly accessible language for blog/social media, precise technical terms.
Instruction: {instruction}
Answer: {answer}
Reply with JSON only: {{"accuracy": {{"score": 1-3}}, "style": {{"score": 1-3}}}}"""


def judge_answers(
    url: str, model: str | None, heldout: list[tuple[str, str]], answers: list[str]
) -> dict[str, float]:
    """Mean accuracy and style scores; answers the judge cannot score are left out (and counted)."""
    import httpx

    scores: dict[str, list[int]] = {"accuracy": [], "style": []}
    failed = 0
    endpoint = url.rstrip("/") + "/chat/completions"
    with httpx.Client(timeout=60) as client:
        for (instruction, _), answer in zip(heldout, answers, strict=False):
            body = {
                "model": model or "judge",
                "messages": [
                    {
                        "role": "user",
                        "content": RUBRIC.format(instruction=instruction, answer=answer),
                    }
                ],
                "temperature": 0,
            }
            try:
                reply = client.post(endpoint, json=body)
                reply.raise_for_status()
                parsed = _parse(reply.json()["choices"][0]["message"]["content"])
            except (httpx.HTTPError, KeyError, ValueError):
                failed += 1
                continue
            for key in scores:
                scores[key].append(parsed[key])
    out = {f"judge_{k}": round(sum(v) / len(v), 3) for k, v in scores.items() if v}
    return out | {"judge_failed": float(failed)}


def _parse(text: str) -> dict[str, int]:
    match = re.search(r"\{.*\}", text, re.S)
    if not match:
        raise ValueError("no JSON in the judge's reply")
    data = json.loads(match.group(0))
    result = {
        k: int(data[k]["score"] if isinstance(data[k], dict) else data[k])
        for k in ("accuracy", "style")
    }
    if not all(1 <= v <= 3 for v in result.values()):
        raise ValueError(f"scores out of range: {result}")
    return result
