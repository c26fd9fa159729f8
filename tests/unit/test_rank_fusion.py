"""Reciprocal rank fusion, near-duplicate removal and MMR reranking, on hand-made candidates."""

from __future__ import annotations

import numpy as np
import pytest

from twin.rag.query import SearchFilters
from twin.rag.rerank import (
    MMRReranker,
    drop_near_duplicates,
    mmr_order,
    reciprocal_rank_fusion,
)
from twin.rag.retrieve import (
    Passage,
    filter_clause,
    is_websearch_syntax,
    match_tsquery,
    select_terms,
    tsquery_term,
)


def unit(*values: float) -> np.ndarray:
    vector = np.asarray(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def passage(chunk_id: str, vector: np.ndarray, *, document_id: str | None = None, **kw) -> Passage:
    return Passage(
        chunk_id=chunk_id,
        document_id=document_id or f"doc-{chunk_id}",
        url=f"http://example.invalid/{chunk_id}",
        title=chunk_id,
        platform="blog",
        document_kind="article",
        published_at=None,
        content=kw.pop("content", f"text of {chunk_id}"),
        embedding=vector,
        **kw,
    )


def test_items_high_in_both_rankings_win() -> None:
    dense = ["a", "b", "c", "d"]
    text = ["c", "a", "e", "f"]
    fused = reciprocal_rank_fusion([dense, text], k=60)
    order = [key for key, _ in fused]
    assert order[:2] == ["a", "c"]  # in both lists, near the top of each
    assert set(order) == {"a", "b", "c", "d", "e", "f"}
    assert dict(fused)["a"] == pytest.approx(1 / 61 + 1 / 62)


def test_an_item_in_both_lists_beats_any_item_in_one_when_lists_are_short() -> None:
    dense = [f"d{i}" for i in range(20)] + ["both"]
    text = [f"t{i}" for i in range(20)] + ["both"]
    order = [key for key, _ in reciprocal_rank_fusion([dense, text])]
    assert order[0] == "both"  # 2/(60+21) > 1/(60+1)


def test_ties_are_broken_deterministically() -> None:
    first = reciprocal_rank_fusion([["x", "y"], ["y", "x"]])
    again = reciprocal_rank_fusion([["x", "y"], ["y", "x"]])
    assert first == again
    assert first[0][1] == first[1][1]
    assert [k for k, _ in first] == ["x", "y"]  # same best rank: the earlier ranking's top wins
    assert [k for k, _ in reciprocal_rank_fusion([["b"], ["a"]])] == ["b", "a"]
    assert [k for k, _ in reciprocal_rank_fusion([["b", "a"], []])] == ["b", "a"]


def test_a_repeat_within_one_ranking_counts_once() -> None:
    assert dict(reciprocal_rank_fusion([["a", "a", "b"]]))["a"] == pytest.approx(1 / 61)


def test_mmr_demotes_near_duplicates() -> None:
    query = unit(1, 0, 0)
    candidates = np.stack([unit(1, 0.19, 0), unit(1, 0.2, 0), unit(1, -0.2, 0.08)])
    picked = [i for i, _ in mmr_order(query, candidates, 3, lambda_=0.7)]
    assert picked == [0, 2, 1]  # the twin of the first pick drops below the different one
    by_relevance = [i for i, _ in mmr_order(query, candidates, 3, lambda_=1.0)]
    assert by_relevance == [0, 1, 2]


def test_mmr_reranker_keeps_k_and_scores_in_pick_order() -> None:
    query = unit(1, 0, 0)
    passages = [
        passage("a", unit(1, 0.19, 0), score=0.030),
        passage("a-twin", unit(1, 0.2, 0), score=0.029),
        passage("other", unit(1, -0.2, 0.08), score=0.0285),
        passage("far", unit(0, 1, 0), score=0.010),
    ]
    reranked = MMRReranker(0.7).rerank("q", query, passages, 3)
    assert [p.chunk_id for p in reranked] == ["a", "other", "a-twin"]
    assert [p.score for p in reranked] == sorted((p.score for p in reranked), reverse=True)


def test_identical_content_and_overlapping_chunks_are_dropped() -> None:
    v = unit(1, 0, 0)
    passages = [
        passage("a", v, content_hash="h1"),
        passage("copy-of-a", unit(0, 1, 0), document_id="elsewhere", content_hash="h1"),
        passage("a-overlap", unit(1, 0.05, 0), document_id="doc-a", content_hash="h2"),
        passage("similar-other-doc", unit(1, 0.05, 0), content_hash="h3"),
        passage("a-later-section", unit(1, 1, 0), document_id="doc-a", content_hash="h4"),
    ]
    kept = [p.chunk_id for p in drop_near_duplicates(passages, 0.95)]
    assert kept == ["a", "similar-other-doc", "a-later-section"]


def test_filters_become_parameters_never_sql_text() -> None:
    hostile = "x'); drop table vectors.chunks; --"
    clause, params = filter_clause(SearchFilters(author=hostile, platforms=["medium", "blog"]))
    rendered = clause.as_string(None)
    assert hostile not in rendered
    assert rendered == "author = %(f_author)s and platform = any(%(f_platforms)s)"
    assert params == {"f_author": hostile, "f_platforms": ["medium", "blog"]}
    assert filter_clause(None)[0].as_string(None) == "true"


def test_common_terms_are_dropped_from_an_any_term_match() -> None:
    frequencies = {"data": 0.4, "pipelin": 0.3, "rerun": 0.02}
    assert select_terms(["data", "pipelin", "rerun", "tuesday"], frequencies, 0.1) == (
        ["tuesday", "rerun"],  # rarest first
        "|",
    )
    # every term common: require all of them rather than match most of the table
    assert select_terms(["data", "pipelin"], frequencies, 0.1) == (["pipelin", "data"], "&")
    assert select_terms([f"t{i:02d}" for i in range(20)], {}, max_terms=3)[0] == [
        "t00",
        "t01",
        "t02",
    ]


def test_match_queries_quote_terms_and_can_require_two_of_them() -> None:
    assert match_tsquery(["rerun", "tuesday"]) == "'rerun' | 'tuesday'"
    assert match_tsquery(["a", "b"], "&") == "'a' & 'b'"
    assert match_tsquery(["a", "b", "c"], "|", min_terms=2) == (
        "('a' & 'b') | ('a' & 'c') | ('b' & 'c')"
    )
    assert match_tsquery(["solo"], "|", min_terms=2) == "'solo'"
    assert tsquery_term("it's") == "'it''s'"
    assert tsquery_term("back\\slash") == "'back\\\\slash'"


def test_web_search_syntax_is_recognised() -> None:
    assert is_websearch_syntax('"rank fusion" -bm25')
    assert is_websearch_syntax("pgvector or faiss")
    assert not is_websearch_syntax("How do I fix E-4017 in my pipeline?")


def test_sentence_windows_slide_over_sentences_and_lines() -> None:
    from twin.rag.rerank import sentence_windows

    text = "One fact. Two facts! Three?\n- four items\nFive: done"
    assert sentence_windows(text, 2) == [
        "One fact. Two facts!",
        "Two facts! Three?",
        "Three? - four items",
        "- four items Five:",
        "Five: done",
    ]
    assert sentence_windows("Short text.", 3) == ["Short text."]
    with pytest.raises(ValueError, match="window size"):
        sentence_windows(text, 0)


def test_splits_and_sets_get_their_own_rows() -> None:
    from twin.rag.evaluate import (
        EvalTable,
        LabelledQuestion,
        QuestionResult,
        group_rows,
        question_groups,
    )

    def q(qid: str, *tags: str) -> LabelledQuestion:
        return LabelledQuestion(id=qid, question=qid, relevant=["x"], tags=list(tags))

    questions = [
        q("a", "hand-written:sample"),
        q("b", "paraphrase", "dev", "hand-written:paraphrases"),
        q("c", "paraphrase", "test", "hand-written:paraphrases"),
        q("d", "generated"),
    ]
    groups = question_groups(questions)
    assert groups == {
        "sample": ["a"],
        "paraphrases": ["b", "c"],
        "paraphrases/dev": ["b"],
        "paraphrases/test": ["c"],
    }
    assert question_groups([q("e", "dev"), q("f", "test")]) == {"dev": ["e"], "test": ["f"]}

    def result(qid: str, rr: float) -> QuestionResult:
        return QuestionResult(qid, rr, rr, rr, rr, [], 1.0)

    table = EvalTable(rows=[], per_question={"hybrid": [result(x, 1.0) for x in "ab"]})
    table.per_question["hybrid"] += [result("c", 0.0), result("d", 0.5)]
    rows = group_rows(table, groups)
    assert rows["paraphrases"][0].mrr == 0.5 and rows["paraphrases"][0].questions == 2
    assert rows["paraphrases/test"][0].mrr == 0.0 and rows["sample"][0].mrr == 1.0
