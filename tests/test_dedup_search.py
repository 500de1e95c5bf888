"""Dedup without a model: normalization, exact duplicates, the faiss neighbour search (exact and
clustered) and the keep rule, on vectors built here."""

from __future__ import annotations

import numpy as np
import pytest

from distillery.operators.dedup.deduplicator import ExactDeduplicator, NearDeduplicator, keep_order
from distillery.operators.dedup.neighbors import NeighborLinks, NeighborSearch, keep_first
from distillery.operators.dedup.normalize import (
    exact_key,
    normalize_for_matching,
    number_agreement,
    number_signature,
    numbers,
    word_tokens,
)
from distillery.schemas.dedup_config import VectorSearchConfig


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def planted(n: int, pairs: int, seed: int = 0) -> tuple[np.ndarray, set[tuple[int, int]]]:
    """n clustered unit vectors (topics, like sentence embeddings) with `pairs` disjoint near-duplicate
    pairs (cosine > 0.95); returns the vectors and the planted pairs as (later, earlier)."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((12, 64))
    vectors = unit(centers[rng.integers(0, 12, n)] + rng.standard_normal((n, 64)))
    chosen = rng.choice(n, size=2 * pairs, replace=False)
    originals, copies = chosen[:pairs], chosen[pairs:]
    vectors[copies] = unit(vectors[originals] + 0.02 * rng.standard_normal((pairs, 64)))
    return vectors, {(max(a, b), min(a, b)) for a, b in zip(originals.tolist(), copies.tolist(), strict=True)}


def link_set(links: NeighborLinks) -> set[tuple[int, int]]:
    return set(zip(links.item.tolist(), links.earlier.tolist(), strict=True))


def test_normalization_meets_renderings_of_one_problem():
    a = r"Find $x + y$ if $\dfrac{1}{2}\cdot x = 3$ and $y=\left( 2 \right)$."
    b = r"FIND $x+y$ if $\frac{1}{2} \cdot x=3$ and $y = (2)$."
    assert normalize_for_matching(a) == normalize_for_matching(b) == r"find x+y if \frac{1}{2}\cdot x=3 and y=(2)."
    assert exact_key(a) == exact_key(b)
    # Case inside math is meaning: A and a are different symbols.
    assert exact_key("Let $A$ be a set.") != exact_key("Let $a$ be a set.")
    assert exact_key("Let $A$ be a set.") == exact_key("LET $A$ BE A SET.")
    # Prices are not math: the text between two dollar amounts keeps its spaces.
    assert normalize_for_matching("It costs $2 per egg and $3 per cake.") == "it costs $2 per egg and $3 per cake."
    assert word_tokens(normalize_for_matching("Janet’s ducks lay 16 eggs")) == [
        "janet",
        "s",
        "ducks",
        "lay",
        "16",
        "eggs",
    ]


def test_numbers_tell_problems_of_one_template_apart():
    a = normalize_for_matching("A train goes 1,200 km in 4.5 hours and 300 km more.")
    assert number_signature(a) == "1200 300 4.5"
    assert number_agreement(numbers(a), numbers("1200 km, 300 km, 4.5 h")) == 1.0
    assert number_agreement(numbers(a), numbers("1200 km and 7 hours")) == pytest.approx(1 / 3)
    assert number_agreement(numbers("no numbers"), numbers("none here")) == 1.0


def test_exact_duplicates_keep_the_first_by_rank_whatever_the_input_order():
    texts = ["What is $2+3$?", "Name a prime.", "what is $2 + 3$?", "WHAT IS $2+3$?"]
    ids = ["d", "a", "c", "b"]
    rank = keep_order(ids)
    result = ExactDeduplicator().run(texts, rank)
    # The group {d, c, b} is represented by its first id in the order: b.
    assert result.kept.tolist() == [False, True, False, True]
    assert result.duplicate_of.tolist() == [3, -1, 3, -1]
    permutation = [2, 0, 3, 1]
    again = ExactDeduplicator().run([texts[i] for i in permutation], keep_order([ids[i] for i in permutation]))
    kept_ids = {ids[permutation[k]] for k in np.flatnonzero(again.kept).tolist()}
    assert kept_ids == {ids[k] for k in np.flatnonzero(result.kept).tolist()} == {"a", "b"}


def test_clustered_search_finds_the_same_pairs_as_the_exact_index():
    vectors, pairs = planted(3000, 40)
    exact = NeighborSearch(VectorSearchConfig())
    clustered = NeighborSearch(VectorSearchConfig(exact_max_rows=500, rows_per_cluster=100, probes=4))
    exact_links = exact.links(vectors, 0.9)
    clustered_links = clustered.links(vectors, 0.9)
    assert exact.plan == "exact"
    assert clustered.plan.startswith("clustered(k=30")
    assert link_set(exact_links) == pairs
    assert link_set(clustered_links) == pairs
    assert np.all(exact_links.score >= 0.9)


def test_keep_rule_is_deterministic_and_every_dropped_row_points_at_a_kept_one():
    # b ~ a and c ~ b, but c is not similar to a: a is kept, b points at a, c survives.
    vectors = unit(np.array([[1.0, 0.0, 0.0], [0.9, 0.436, 0.0], [0.7, 0.714, 0.0], [0.0, 0.0, 1.0]]))
    links = NeighborSearch().links(vectors, 0.85)
    assert link_set(links) == {(1, 0), (2, 1)}
    result = keep_first(4, links)
    assert result.kept.tolist() == [True, False, True, True]
    assert result.duplicate_of[1] == 0
    assert result.score[1] == pytest.approx(float(vectors[0] @ vectors[1]), abs=1e-5)
    # The keep order decides, not the row order: with c first, b falls as a duplicate of c (its closest).
    rank = np.array([1, 2, 0, 3])
    reranked = keep_first(4, NeighborSearch().links(vectors, 0.85, rank=rank), rank)
    assert reranked.kept.tolist() == [True, False, True, True]
    assert reranked.duplicate_of[1] == 2


def test_same_and_differ_codes_filter_pairs():
    vectors = unit(np.array([[1.0, 0.0], [1.0, 0.01], [1.0, 0.02], [0.0, 1.0]]))
    search = NeighborSearch()
    assert link_set(search.links(vectors, 0.99)) == {(1, 0), (2, 0), (2, 1)}
    assert link_set(search.links(vectors, 0.99, same=np.array([0, 0, 1, 1]))) == {(1, 0)}
    assert link_set(search.links(vectors, 0.99, differ=np.array([0, 0, 1, 1]))) == {(2, 0), (2, 1)}


def test_a_large_group_keeps_only_the_earliest_neighbours():
    rng = np.random.default_rng(1)
    vectors = unit(np.ones((50, 16)) + 0.001 * rng.standard_normal((50, 16)))
    links = NeighborSearch(VectorSearchConfig(max_neighbors=3)).links(vectors, 0.99)
    for item in range(50):
        earlier = sorted(links.earlier[links.item == item].tolist())
        assert earlier == list(range(min(item, 3)))
    result = keep_first(50, links)
    assert np.flatnonzero(result.kept).tolist() == [0]
    assert set(result.duplicate_of[1:].tolist()) == {0}


def test_near_duplicates_must_share_their_numbers_when_asked():
    vectors = unit(np.array([[1.0, 0.0], [1.0, 0.001], [1.0, 0.002]]))
    texts = ["Add 3 and 4.", "Add 3 and 5.", "add 3 and 4!"]
    loose = NearDeduplicator(0.99).run(vectors, np.arange(3))
    strict = NearDeduplicator(0.99, same_numbers=True).run(vectors, np.arange(3), texts=texts)
    assert loose.kept.tolist() == [True, False, False]
    assert strict.kept.tolist() == [True, True, False]
    assert strict.duplicate_of[2] == 0
    with pytest.raises(ValueError, match="same_numbers needs the texts"):
        NearDeduplicator(0.99, same_numbers=True).run(vectors, np.arange(3))
