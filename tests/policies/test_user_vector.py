from __future__ import annotations

import numpy as np
import pytest
import torch

from policies.user_vector import UserVectorPolicy, gate, make_config, reinforce_grad


def unit(rows):
    a = np.asarray(rows, dtype=np.float64)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def test_reinforce_gradient_sign_and_magnitude_hand_built():
    V = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    pi = torch.tensor([0.5, 0.5], dtype=torch.float64)
    g = reinforce_grad(V, pi, [0], advantage=1.0, tau=1.0)
    # mean V_chosen - sum pi V = [1, 0] - [0.5, 0.5]
    assert torch.allclose(g, torch.tensor([0.5, -0.5], dtype=torch.float64))
    # it is the true gradient of A * log pi_0 wrt z (finite differences)
    z = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    torch.log_softmax(V @ z, dim=0)[0].backward()
    assert torch.allclose(z.grad, g)
    assert torch.allclose(reinforce_grad(V, pi, [0], advantage=-2.0, tau=0.5), -4 * g)


def test_update_moves_vector_toward_rewarded_cards():
    pol = UserVectorPolicy(make_config("default", explore=False, J=1, fit_pca=False), dim=4)
    E = unit(np.eye(4)[:3])
    s0 = np.array([0.5, 0.4, 0.3])
    for _ in range(30):
        chosen, _ = pol.choose("u", E, s0, E[0])
        assert chosen == [0]
        pol.update("u", 1.0, E[0], g=1.0)  # card 0 keeps earning praise
    z = pol.state("u").z_long
    V = pol.state("u").item_vectors(E, first_dims=True)
    scores = (V @ z).numpy()
    assert scores[0] > scores[1] and scores[0] > scores[2]


def test_gate_follows_the_published_table():
    assert gate(-1.0, 0.1, 0.1) == 0.9
    assert gate(-1.0, 0.6, 0.6) == 0.2
    assert gate(0.8, 0.5, 0.0) == 0.6 and gate(0.8, 0.1, 0.0) == 0.3
    assert gate(0.0, 0.3, 0.3) == 0.5
    assert gate(-1.0, 0.1, 0.5, paper=True) == 0.5 and gate(-1.0, 0.1, 0.5) == 0.9


def test_paper_preset_reproduces_published_settings():
    c = make_config("paper")
    assert c.J == 5 and not c.explore and not c.rerank_always and not c.fit_pca and not c.reward_last_turn
    d = make_config("default")
    assert d.J == 3 and d.rerank_always and d.fit_pca and d.reward_last_turn
    assert (d.k, d.beta_L, d.beta_S, d.tau, d.eta_L, d.eta_S, d.alpha, d.lam, d.K) == \
        (256, 2.0, 5.0, 1.0, 0.01, 0.05, 0.05, 0.1, 64)
    with pytest.raises(ValueError, match="unknown rag_vector preset 'papr'"):
        make_config("papr")
    with pytest.raises(ValueError, match="unknown rag_vector parameter"):
        make_config("default", eta=1)


# ---- the published defects, one test each ------------------------------------------------------
def test_defect_pca_never_fitted_default_fits_and_refits_on_growth():
    rng = np.random.default_rng(0)
    E = unit(rng.standard_normal((40, 16)))
    paper = UserVectorPolicy(make_config("paper", k=8), dim=16)
    assert not paper.maybe_refit("u", E)
    V = paper.state("u").item_vectors(E[:3], first_dims=True)
    assert torch.allclose(V, torch.from_numpy(E[:3, :8]))  # published: first k dims
    pol = UserVectorPolicy(make_config("default", k=8), dim=16)
    assert pol.maybe_refit("u", E[:8]) and pol.state("u").fitted_n == 8
    assert not pol.maybe_refit("u", E[:12])  # not doubled yet
    assert pol.maybe_refit("u", E[:16])  # doubled: refit
    P = pol.state("u").P
    assert torch.allclose(P @ P.T, torch.eye(8, dtype=torch.float64), atol=1e-8)  # orthonormal item space
    # the leading direction is the data's first principal component
    X = E[:16] - E[:16].mean(0)
    pc1 = np.linalg.svd(X, full_matrices=False)[2][0]
    assert abs(float(P[0].numpy() @ pc1)) == pytest.approx(1.0, abs=1e-6)


def test_refit_carries_the_user_vector_over():
    rng = np.random.default_rng(1)
    E = unit(rng.standard_normal((32, 16)))
    pol = UserVectorPolicy(make_config("default", k=16), dim=16)
    pol.maybe_refit("u", E[:8])
    st = pol.state("u")
    st.z_long = torch.from_numpy(rng.standard_normal(16))
    before = (st.item_vectors(E, first_dims=False) @ st.z_long).numpy()
    pol.maybe_refit("u", E[:16])
    after = (st.item_vectors(E, first_dims=False) @ st.z_long).numpy()
    # full-rank item space: scores differ only by the change of centre (a constant shift)
    assert np.allclose(after - after.mean(), before - before.mean(), atol=1e-8)


def test_defect_tiny_effect_the_change_rate_is_measured():
    pol = UserVectorPolicy(make_config("default", explore=False, J=1, fit_pca=False, k=4), dim=4)
    E = unit(np.eye(4)[:3])
    s0 = np.array([0.5, 0.4, 0.3])
    _, diag = pol.choose("u", E, s0, E[0])
    assert diag["changed"] is False
    pol.state("u").z_long = torch.tensor([-1.0, 1.0, 0.0, 0.0], dtype=torch.float64)
    chosen, diag = pol.choose("u", E, s0, E[0])
    assert diag["changed"] is True and chosen == [1]
    assert pol.change_rate() == 0.5


def test_defect_zero_gradient_with_at_most_J_cards():
    E = unit(np.eye(4)[:2])  # two conditional cards, J = 3 (default) / 5 (paper)
    s0 = np.array([0.6, 0.5])
    paper = UserVectorPolicy(make_config("paper"), dim=4)
    paper.choose("u", E, s0, E[0])
    assert paper.update("u", -1.0, E[1], restated=True) is None
    assert torch.count_nonzero(paper.state("u").z_long) == 0  # the published code never learns here
    pol = UserVectorPolicy(make_config("default"), dim=4)
    pol.choose("u", E, s0, E[0])
    assert pol.wants_restatement("u")
    assert pol.update("u", -1.0, E[1], restated=True) is not None  # the user restated card 1
    z = pol.state("u").z_long
    V = pol.state("u").item_vectors(E, first_dims=False)
    assert float(V[1] @ z) > float(V[0] @ z)  # the step went toward the restated card


def test_every_card_is_shown_when_at_most_J_fit():
    E = unit(np.eye(4)[:3])  # three conditional cards, J = 3: hiding one would drop a preference
    for explore in (True, False):
        pol = UserVectorPolicy(make_config("default"), dim=4, seed=1)
        chosen, diag = pol.choose("u", E, np.array([0.6, 0.5, 0.4]), E[0], explore=explore)
        assert sorted(chosen) == [0, 1, 2] and diag["J"] == 3
        # a reaction without a restatement carries no information about a choice that was not made
        assert pol.update("u", -1.0, E[0], g=1.0) is None
        assert torch.count_nonzero(pol.state("u").z_long) == 0


def test_defect_z_long_starts_at_zero_for_every_new_user():
    pol = UserVectorPolicy(make_config("default", explore=False, J=1, fit_pca=False), dim=4)
    E = unit(np.eye(4)[:3])
    for _ in range(5):
        pol.choose("a", E, np.array([0.5, 0.4, 0.3]), E[0])
        pol.update("a", 1.0, E[0], g=1.0)
    assert pol.state("a").z_long.abs().sum() > 0
    assert pol.state("b").z_long.abs().sum() == 0  # no leak from other users' vectors


def test_state_round_trip():
    pol = UserVectorPolicy(make_config("default"), dim=8, seed=3)
    E = unit(np.random.default_rng(2).standard_normal((10, 8)))
    pol.maybe_refit("u", E)
    pol.choose("u", E[:5], np.linspace(1, 0, 5), E[0])
    pol.update("u", 1.0, E[1])
    other = UserVectorPolicy(make_config("default"), dim=8, seed=3)
    other.load_state_dict(pol.state_dict())
    a = pol.choose("u", E[:6], np.linspace(1, 0, 6), E[0])
    b = other.choose("u", E[:6], np.linspace(1, 0, 6), E[0])
    assert a[0] == b[0]
    assert torch.allclose(pol.state("u").z_long, other.state("u").z_long)


def test_default_explores_near_the_reranker_choice_paper_scale_is_flat():
    # 2 relevant candidates among 42: on the raw [0, 1] scale softmax(s0) is almost uniform, so
    # exploring samples cards nearly at random; the default's log scale keeps it near the reranker
    s0 = np.array([1.0, 0.8] + [0.0] * 40)
    emb = np.eye(42, 16, dtype=np.float32)
    q = np.zeros(16, dtype=np.float32)
    masses = {}
    for preset in ("default", "paper"):
        pol = UserVectorPolicy(make_config(preset, explore=False), dim=16, seed=0)
        pol.choose("u", emb, s0, q)
        pi = pol.state("u").pending.pi.numpy()
        masses[preset] = float(pi[:2].sum())
    assert masses["default"] > 0.99
    assert masses["paper"] < 0.15
    assert make_config("paper").s0_log is False and make_config("default").s0_log is True
    with pytest.raises(ValueError, match="s0_floor"):
        make_config("default", s0_floor=0.0)


def test_restated_credit_moves_toward_the_card_the_user_restated():
    rng = np.random.default_rng(0)
    E = rng.standard_normal((6, 16)).astype(np.float32)
    E /= np.linalg.norm(E, axis=1, keepdims=True)
    pol = UserVectorPolicy(make_config("conditional", explore=False, eta_L=0.0), dim=16, seed=0)
    pol.maybe_refit("u", E)
    s0 = np.array([1.0, 0.9, 0.8, 0.2, 0.1, 0.05])
    V = pol.state("u").item_vectors(E, first_dims=False)
    before = float(V[5] @ pol.state("u").z_ctx.get("math", torch.zeros(V.shape[1], dtype=torch.float64)))
    pol.choose("u", E, s0, E[0], context="math")
    pol.update("u", -1.0, E[5], restated=True)  # the user restated card 5, which was not chosen
    z = pol.state("u").z_ctx["math"]
    assert float(V[5] @ z) > before
    assert torch.count_nonzero(pol.state("u").z_long) == 0  # the kind's evidence stays with the kind
    assert "logic" not in pol.state("u").z_ctx
    # without a restatement only the reaction update applies (eta_L = 0 here: nothing moves)
    pol.choose("u", E, s0, E[0], context="math")
    pol.update("u", -1.0, E[5], restated=False)
    assert torch.allclose(pol.state("u").z_ctx["math"], z)
    other = UserVectorPolicy(make_config("conditional"), dim=16, seed=0)
    other.load_state_dict(pol.state_dict())
    assert torch.allclose(other.state("u").z_ctx["math"], z)
    with pytest.raises(ValueError, match="credit"):
        make_config("default", credit="always")


def test_a_tie_broken_by_the_vector_is_no_change_of_the_chosen_cards():
    from policies.user_vector import vector_changed_choice

    s0 = np.array([3.0, 2.0, 1.0, 1.0, 0.5])  # with J = 3 the third slot is a tie between cards 2 and 3
    assert not vector_changed_choice(s0, s0 + np.array([0, 0, 0, 1e-6, 0]), 3)  # card 3 instead of 2: a tie broken
    assert vector_changed_choice(s0, s0 + np.array([0, 0, 0, 0, 2.0]), 3)  # card 4 moved in: a real change
    assert not vector_changed_choice(s0, s0 + np.array([0, 5.0, 0, 0, 0]), 3)  # reordered inside the top: no change
    assert not vector_changed_choice(s0, s0 + np.array([0, 0, 0, 0, 9.0]), 5)  # all chosen anyway
