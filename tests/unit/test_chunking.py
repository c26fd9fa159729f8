"""Chunking per document type, with the embedding model's own tokenizer."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator

import pytest

from sample_author import load_documents
from twin.features.chunk import (
    ChunkBudget,
    MartDocument,
    chunk_document,
    split_repository_files,
)
from twin.features.embed import Embedder

HEADING = re.compile(r"^## (.+)$", re.MULTILINE)


@pytest.fixture(scope="module")
def tokenizer():
    """The packaged MiniLM's tokenizer (the same files `SentenceTransformer.tokenizer` reads)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(Embedder.get().spec.path), local_files_only=True)


def mart(key: str) -> MartDocument:
    """A sample-author document as the marts would hold it."""
    doc = next(d for d in load_documents() if d.key == key)
    return MartDocument(
        document_id=doc.key,
        author="Ada Lindqvist",
        platform=doc.platform,
        document_kind=doc.kind,
        title=doc.title,
        body=doc.body,
        clean_hash="h",
    )


def n_tokens(tokenizer, text: str, special: bool = False) -> int:
    return len(tokenizer(text, add_special_tokens=special)["input_ids"])


def consecutive_in_section(chunks) -> Iterator[tuple]:
    for a, b in itertools.pairwise(chunks):
        if a.section == b.section:
            yield a, b


def test_a_short_post_stays_whole(tokenizer) -> None:
    doc = mart("linkedin/chunking-tip")

    chunks = chunk_document(doc, tokenizer, ChunkBudget())

    assert len(chunks) == 1
    assert chunks[0].content == doc.body.strip()
    assert chunks[0].strategy == "post-whole/v1"
    assert chunks[0].embedding_text.startswith(f"{doc.title}\n\n")


def test_articles_split_on_headings_within_the_window(tokenizer) -> None:
    doc = mart("medium/lora-on-a-budget")
    budget = ChunkBudget()

    chunks = chunk_document(doc, tokenizer, budget)

    labels = {c.section for c in chunks}
    assert set(HEADING.findall(doc.body)) <= labels
    assert all(c.strategy == "article-sections/v1" for c in chunks)
    assert all(n_tokens(tokenizer, c.embedding_text, special=True) <= 256 for c in chunks)
    assert all(not c.content.startswith("## ") for c in chunks)
    assert [c.chunk_index for c in chunks] == list(range(len(chunks)))
    assert chunks[-1].content.endswith("Ship the boring version first.")


def test_consecutive_chunks_of_a_section_overlap(tokenizer) -> None:
    doc = mart("medium/lora-on-a-budget")
    budget = ChunkBudget(max_tokens=128, overlap_tokens=32)

    chunks = chunk_document(doc, tokenizer, budget)

    pairs = [
        (a, b) for a, b in consecutive_in_section(chunks) if "```" not in a.content + b.content
    ]
    assert pairs
    for a, b in pairs:
        shared = next(
            (k for k in range(len(b.content), 0, -1) if a.content.endswith(b.content[:k])), 0
        )
        overlap = n_tokens(tokenizer, b.content[:shared])
        assert 5 <= overlap <= 32, (a.content, b.content)
    assert all(n_tokens(tokenizer, c.embedding_text, special=True) <= 128 for c in chunks)


def test_ids_are_stable_and_follow_the_text(tokenizer) -> None:
    doc = mart("medium/lora-on-a-budget")
    first = chunk_document(doc, tokenizer)
    again = chunk_document(doc, tokenizer)
    edited = doc.model_copy(
        update={"body": doc.body.replace("My manager was kind about it.", "My manager laughed.")}
    )
    changed = chunk_document(edited, tokenizer)
    other_model = chunk_document(doc, tokenizer, model_name="another/model")

    assert [c.chunk_id for c in first] == [c.chunk_id for c in again]
    before, after = {c.chunk_id for c in first}, {c.chunk_id for c in changed}
    assert len(before - after) == 1 and len(after - before) == 1
    assert "My manager laughed." in next(c for c in changed if c.chunk_id not in before).content
    assert not before & {c.chunk_id for c in other_model}


def test_token_counts_come_from_the_model_tokenizer(tokenizer) -> None:
    keys = ("medium/lora-on-a-budget", "linkedin/midsummer-incident", "blog/cost-per-answer")
    chunks = [c for key in keys for c in chunk_document(mart(key), tokenizer)]

    assert chunks
    assert all(c.token_count == n_tokens(tokenizer, c.content) for c in chunks)


def test_a_long_post_is_split_like_an_article(tokenizer) -> None:
    doc = mart("linkedin/chunking-tip")

    chunks = chunk_document(
        doc,
        tokenizer,
        ChunkBudget(max_tokens=64, min_tokens=8, overlap_tokens=8, max_context_tokens=16),
    )

    assert len(chunks) > 1
    assert all(c.strategy == "article-sections/v1" for c in chunks)
    assert all(n_tokens(tokenizer, c.embedding_text, special=True) <= 64 for c in chunks)


REPO_BODY = """# dagcheck

A linter for Airflow DAG files: it catches expensive imports and wall-clock reads.

## Install

Run `pip install dagcheck` and point it at your dags folder.

### docs/rules.md

# Rules

## DC001: nothing expensive at import time

DAG files are parsed every thirty seconds. Keep network calls and heavy imports out of module
scope, inside the task callables instead.

### src/dagcheck/rules.py

```python
\"\"\"The rules dagcheck applies to a DAG file.\"\"\"

import ast

IMPORT_TIME_CALLS = {"requests.get", "boto3.client", "pd.read_sql"}


def top_level_calls(tree: ast.Module) -> list[ast.Call]:
    \"\"\"Calls made at module level, where the DAG processor runs them on every parse.\"\"\"
    return [node for node in tree.body if isinstance(node, ast.Expr)]


# A finding names the rule, the line and what to do instead.
class Finding:
    def __init__(self, rule: str, line: int, advice: str) -> None:
        self.rule = rule
        self.line = line
        self.advice = advice


@staticmethod
def wall_clock_reads(tree: ast.Module) -> list[int]:
    \"\"\"Lines that read the wall clock instead of the data interval.\"\"\"
    return [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr == "now"]
```

### cmd/dagscan/main.go

package main

import "fmt"

// scan walks a folder of DAG files and prints each finding.
func scan(root string) int {
	fmt.Println("scanning", root)
	return 0
}

func main() {
	scan(".")
}

### sql/001_findings.sql

create table findings (rule text, path text, line int);

create index findings_rule on findings (rule);
"""


def test_repositories_split_per_file_and_code_on_definitions(tokenizer) -> None:
    doc = MartDocument(
        document_id="github/dagcheck",
        author="Ada Lindqvist",
        platform="github",
        document_kind="repository",
        title="dagcheck",
        body=REPO_BODY,
        clean_hash="h",
    )
    assert [p for p, _ in split_repository_files(REPO_BODY)] == [
        None, "docs/rules.md", "src/dagcheck/rules.py", "cmd/dagscan/main.go",
        "sql/001_findings.sql",
    ]  # fmt: skip

    whole = chunk_document(doc, tokenizer)
    small = chunk_document(
        doc,
        tokenizer,
        ChunkBudget(max_tokens=128, min_tokens=8, overlap_tokens=16, max_context_tokens=24),
    )

    assert all(c.strategy == "repository-files/v1" for c in whole)
    files = {c.section.split(" › ")[0] for c in whole if c.section}
    assert {"docs/rules.md", "src/dagcheck/rules.py", "cmd/dagscan/main.go"} <= files
    go = next(c for c in whole if c.section == "cmd/dagscan/main.go")
    assert go.content.startswith("```go\n") and go.content.endswith("```")  # fenced, not split
    python = [c for c in small if c.section == "src/dagcheck/rules.py"]
    assert len(python) > 1
    for c in python:
        lines = c.content.split("\n")
        assert lines[0] == "```python" and lines[-1] == "```"
    starts = [c.content.split("\n")[1] for c in python[1:]]
    assert all(re.match(r"(def |class |# |@)", s) for s in starts), starts
    assert all(n_tokens(tokenizer, c.embedding_text, special=True) <= 128 for c in small)


def test_duplicate_and_empty_content_make_no_chunks(tokenizer) -> None:
    repeated = "Count the rows before and after every load.\n\n" * 3
    doc = MartDocument(
        document_id="d",
        author="a",
        platform="blog",
        document_kind="article",
        title="Rows",
        body=f"## One\n\n{repeated}\n## Two\n\n{repeated}",
        clean_hash="h",
    )
    empty = doc.model_copy(update={"body": "  \n"})

    chunks = chunk_document(doc, tokenizer, ChunkBudget(min_tokens=0))

    assert len({c.chunk_id for c in chunks}) == len(chunks)
    assert chunk_document(empty, tokenizer) == []
