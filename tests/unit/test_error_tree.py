"""The error tree (promptless.errors) and the small contracts the floor plan settled."""

from __future__ import annotations

import pytest

import promptless as pl
from promptless import errors
from promptless.budget import Budget
from promptless.cli.errors import RUNTIME, USAGE, classify
from promptless.testing import ScriptedLM


def test_every_error_is_a_promptless_error_and_keeps_its_builtin_base():
    for cls in (pl.SignatureError, pl.ArtifactError, pl.ParseError, errors.CheckpointMismatch, errors.TypeSyntaxError):
        assert issubclass(cls, errors.PromptlessError) and issubclass(cls, ValueError)
    assert issubclass(errors.ModelNotInstalled, pl.LMNotFound) and issubclass(errors.ModelNotInstalled, RuntimeError)
    assert issubclass(pl.BudgetExhausted, RuntimeError) and pl.BudgetExhausted.fatal
    assert pl.LMTimeout.transient and pl.LMTimeout.outage and not pl.LMTimeout.fatal
    assert pl.LMAuthError.fatal and not pl.LMAuthError.transient


def test_old_homes_still_export_the_names():
    from promptless.adapters import ParseError
    from promptless.evaluate import TooManyErrors
    from promptless.lm.errors import LMError
    from promptless.lm.models import ModelNotInstalled
    from promptless.module import ArtifactError
    from promptless.modules.parallel import TooManyFailures

    assert ParseError is errors.ParseError and TooManyErrors is TooManyFailures is errors.TooManyErrors
    assert LMError is errors.LMError and ModelNotInstalled is errors.ModelNotInstalled
    assert ArtifactError is errors.ArtifactError


def test_the_cli_reads_exit_codes_from_the_tree():
    assert classify(pl.ArtifactError("bad")).code == USAGE
    assert classify(errors.CheckpointMismatch("other compile")).code == USAGE
    assert classify(pl.LMTimeout("slow")).code == RUNTIME
    assert "raise --budget" in str(classify(pl.BudgetExhausted("spent")))


def test_run_guard_stops_on_fatal_at_once_and_on_outages_in_a_row():
    guard = errors.RunGuard()
    guard.failed(ValueError("a wrong answer"))
    with pytest.raises(pl.LMAuthError):
        guard.failed(pl.LMAuthError("401"))
    guard.failed(pl.LMTimeout("1"))
    guard.failed(pl.LMTimeout("2"))
    guard.succeeded()
    guard.failed(pl.LMUnavailable("1"))
    guard.failed(pl.LMUnavailable("2"))
    with pytest.raises(pl.LMUnavailable):
        guard.failed(pl.LMUnavailable("3"))


def test_non_strict_load_state_returns_what_did_not_match():
    class Two(pl.Module):
        def __init__(self):
            self.a = pl.Predict("q -> x")
            self.b = pl.Predict("q -> y")

    state = Two().dump_state()
    del state["predictors"]["b"]
    state["predictors"]["c"] = state["predictors"]["a"]
    incompatible = Two().load_state(state, strict=False)
    assert incompatible.missing == ["b"] and incompatible.unexpected == ["c"]
    assert Two().load_state(Two().dump_state()) == ([], [])


def test_an_inner_budget_refuses_before_the_outer_is_charged():
    outer = Budget(max_lm_calls=10)
    inner = Budget(max_lm_calls=1, parent=outer)
    inner.charge_call()
    with pytest.raises(pl.BudgetExhausted):
        inner.charge_call()
    assert (inner.lm_calls, outer.lm_calls) == (1, 1)


def test_unknown_keywords_are_refused():
    with pytest.raises(TypeError, match="colour"):
        pl.InputField(desc="x", colour="red")
    with pytest.raises(TypeError, match="verbose"):
        pl.Evaluate(devset=[], metric=lambda e, p, t=None: 1, verbose=True)


def test_batch_stops_on_a_fatal_error_instead_of_sending_every_request():
    lm = ScriptedLM(default=pl.LMAuthError("401: key revoked"))
    program = pl.Predict("question -> answer", lm=lm)
    with pytest.raises(pl.LMAuthError):
        program.batch([{"question": f"q{i}"} for i in range(50)], num_threads=2)
    assert len(lm.requests) <= 2 * 2 + 2  # at most the window in flight, not all 50


def test_response_history_is_a_field_never_serialized():
    lm = ScriptedLM(["hi"])
    response = lm(pl.Request(prompt="x"))
    assert response.history is lm.history[-1]
    assert "history" not in response.to_dict()
    assert pl.Response.from_dict(response.to_dict()).history is None
