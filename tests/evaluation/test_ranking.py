import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embedrec.data.dataset import Ratings
from embedrec.evaluation import ranking
from embedrec.evaluation.evaluate import evaluate_ranking, relevant_items


def test_by_hand():
    ranked, relevant = [7, 3, 9, 1], {3, 1, 5}
    # hits at ranks 2 and 4; k = 4
    assert ranking.precision_at_k(ranked, relevant, 4) == pytest.approx(2 / 4)
    assert ranking.recall_at_k(ranked, relevant, 4) == pytest.approx(2 / 3)
    assert ranking.hit_rate_at_k(ranked, relevant, 4) == 1.0
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert ranking.ndcg_at_k(ranked, relevant, 4) == pytest.approx(dcg / idcg)
    # AP@4 = (P@2 + P@4) / min(4, 3) = (1/2 + 2/4) / 3
    assert ranking.map_at_k(ranked, relevant, 4) == pytest.approx(1 / 3)


def test_no_relevant_items_is_nan_and_left_out_of_means():
    assert math.isnan(ranking.ndcg_at_k([1, 2], set(), 2))
    hits = np.array([[True, False], [False, False]])
    means = ranking.mean_metrics(hits, np.array([1, 0]), 2)
    assert means["n_users"] == 1 and means["precision"] == pytest.approx(0.5)


def test_no_hits_gives_zero():
    assert ranking.ndcg_at_k([1, 2, 3], {9}, 3) == 0.0
    assert ranking.map_at_k([1, 2, 3], {9}, 3) == 0.0


def test_k_larger_than_the_catalogue():
    # two items in all, both relevant, k = 5: recall and ndcg are perfect, precision is 2/5
    assert ranking.recall_at_k([1, 2], {1, 2}, 5) == 1.0
    assert ranking.ndcg_at_k([1, 2], {1, 2}, 5) == pytest.approx(1.0)
    assert ranking.precision_at_k([1, 2], {1, 2}, 5) == pytest.approx(0.4)
    assert ranking.map_at_k([1, 2], {1, 2}, 5) == pytest.approx(1.0)


def test_all_ties_are_ranked_deterministically():
    from embedrec.recommender import top_k

    scores = np.zeros((2, 6))
    assert top_k(scores, 3).tolist() == [[0, 1, 2], [0, 1, 2]]


def test_padding_never_hits():
    hits = ranking.hits_matrix(np.array([[4, -1, -1]]), [np.array([4, 5])])
    assert hits.tolist() == [[True, False, False]]


def test_coverage_and_popularity():
    recs = np.array([[0, 1], [1, -1]])
    assert ranking.coverage(recs, 4) == 0.5
    assert ranking.mean_popularity(recs, np.array([10, 2, 0, 0])) == pytest.approx(14 / 3)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 30), min_size=1, max_size=20, unique=True),
       st.sets(st.integers(0, 30), max_size=15), st.integers(1, 25))
def test_values_in_unit_interval(ranked, relevant, k):
    for fn in (ranking.precision_at_k, ranking.recall_at_k, ranking.ndcg_at_k,
               ranking.map_at_k, ranking.hit_rate_at_k):
        value = fn(ranked, relevant, k)
        assert (math.isnan(value) and not relevant) or 0.0 <= value <= 1.0 + 1e-12


@settings(max_examples=100, deadline=None)
@given(st.sets(st.integers(0, 50), min_size=1, max_size=12), st.integers(1, 15))
def test_perfect_ranking_scores_one(relevant, k):
    ranked = sorted(relevant) + [100, 101, 102]
    assert ranking.ndcg_at_k(ranked, relevant, k) == pytest.approx(1.0)
    assert ranking.map_at_k(ranked, relevant, k) == pytest.approx(1.0)
    assert ranking.hit_rate_at_k(ranked, relevant, k) == 1.0
    assert ranking.recall_at_k(ranked, relevant, k) == pytest.approx(min(1.0, k / len(relevant)))


def test_evaluate_ranking_with_a_known_recommender():
    frame = pd.DataFrame({"user": [1, 1, 1, 2, 2], "item": [10, 20, 30, 10, 40],
                          "rating": [5.0, 2.0, 4.5, 4.0, 1.0]})
    test = Ratings.from_frame(frame, scale=(1.0, 5.0))
    users, relevant = relevant_items(test, 4.0)
    assert users.tolist() == [0, 1] and [r.tolist() for r in relevant] == [[0, 2], [0]]
    perfect = lambda us: np.array([[0, 2], [0, 3]])[us]  # noqa: E731
    result = evaluate_ranking(perfect, test, k=2, threshold=4.0, item_counts=np.array([3, 1, 1, 1]))
    assert result["ndcg_at_k"] == pytest.approx(1.0) and result["n_users_ranked"] == 2
    assert result["precision_at_k"] == pytest.approx((1.0 + 0.5) / 2)
    assert result["coverage_at_k"] == pytest.approx(3 / 4)
