"""Many steering sets in one generation pass (rows = set x prompt) against one set at a time, on
the tiny model: the same logits at every prefill and decode step (bit for bit), the same tokens,
texts and finish reasons, and through the steering sweep the same judged records and per-set
metrics. The sets differ (each changes the tokens), so a row given another set's steering shows.

Bit for bit holds on one intra-op thread, and the logit tests run on one: a single-threaded
reduction over a row does not depend on how many rows the batch has. With several threads the
split of a product's work between them can depend on the row count, and a batch of sets can then
differ from one set alone in the last bits of a logit (about 5e-7 here); on two threads the tests
assert what the study needs from that, the same tokens and records, and say so.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from pipeline.interventions.decoder import Stack, generate_sets, prefill_sets
from pipeline.interventions.sets import DirectionSets, HeadSets, NeuronSets

WORDS = ["Peru", "Chile", "Fe", "gold", "Oslo", "Kenya", "Laos", "Mali"]
PROMPTS = [f"Q: capital of {w}?\nA:" for w in WORDS] + [f"Context: x.\nQ: {w}\nA:" for w in WORDS]
STOPS = (":", ")")  # frequent in the tiny model's output: rows finish at different steps


@pytest.fixture(scope="module")
def lm():
    from pipeline.models import load

    return load("tiny")


def _threads(n):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def one_thread():
    """Bit for bit: single-threaded reductions do not depend on the batch's row count."""
    yield from _threads(1)


@pytest.fixture
def two_threads():
    """The study's default on this project's 2-core machines; logits may differ in the last bits."""
    yield from _threads(2)


def families(lm) -> dict[str, object]:
    """Five sets of each kind, with the no-op settings (alpha 1, strength 0) among them; DiffMean
    and ITI sets start at layer 1, so layer 0 is computed once for all sets."""
    rng = np.random.default_rng(0)
    hd = lm.head_dim
    return {
        "neurons": NeuronSets([{0: rng.choice(lm.d_ffn, 3, replace=False).tolist(),
                                1: rng.choice(lm.d_ffn, 2, replace=False).tolist()} for _ in range(5)],
                              [0.0, 3.0, 2.7, 1.0, 0.3]),
        "direction": DirectionSets([1] * 5, [3 * rng.normal(size=lm.d_model) for _ in range(5)], [1.0, 2.0, -1.5, 0.0, 0.7]),
        "direction-layers": DirectionSets([1, 0, 1, 0, 1], [3 * rng.normal(size=lm.d_model) for _ in range(5)],
                                          [1.0, 2.0, -1.5, 0.3, 0.7]),
        "heads": HeadSets([{1: {0: 3 * rng.normal(size=hd), 2: 3 * rng.normal(size=hd)}} for _ in range(5)],
                          [1.0, 2.0, -1.5, 0.0, 0.7]),
        "heads-mixed": HeadSets([{1: {0: 3 * rng.normal(size=hd)}} if k % 2 else
                                 {0: {1: 3 * rng.normal(size=hd)}, 1: {3: 3 * rng.normal(size=hd)}} for k in range(5)],
                                [1.0, 2.0, -1.5, 0.0, 0.7]),
    }


KINDS = ["neurons", "direction", "direction-layers", "heads", "heads-mixed"]


def one_at_a_time(lm, sets, prompts, **kw):
    from pipeline.models import generate

    out = []
    for k in range(len(sets)):
        with sets.context(lm, k):
            out.append(generate(lm, prompts, 8, batch_size=8, **kw))
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_batched_prefill_gives_the_same_logits_bit_for_bit(lm, kind, one_thread):
    from pipeline.models.sampling import _prefill

    sets = families(lm)[kind]
    rows = lm.tokenizer(PROMPTS[:8])["input_ids"]
    with torch.inference_mode(), sets.install(lm) as steer:
        if kind.startswith("direction") or kind == "heads":
            assert steer.first_layer == (0 if kind == "direction-layers" else 1)
        hidden, *_ = prefill_sets(lm, Stack.of(lm), rows, len(sets), steer, 0)
        batched = lm.model.lm_head(hidden).reshape(len(sets), len(rows), -1)
    for k in range(len(sets)):
        with torch.inference_mode(), sets.context(lm, k):
            alone = lm.model.lm_head(_prefill(lm, rows, 0)[0])
        assert torch.equal(batched[k], alone), f"set {k}"


def same_generations(lm, sets):
    alone = one_at_a_time(lm, sets, PROMPTS, stop_strings=STOPS)
    # max_rows 16 with batches of 8 prompts: two sets a pass, three passes per batch
    batched = generate_sets(lm, PROMPTS, sets, 8, batch_size=8, stop_strings=STOPS, max_rows=16)
    assert [[(g.token_ids, g.text, g.finish_reason, g.prompt_index) for g in gens] for gens in batched] == \
           [[(g.token_ids, g.text, g.finish_reason, g.prompt_index) for g in gens] for gens in alone]
    assert len({tuple(g.token_ids for g in gens) for gens in alone}) == len(sets)  # every set steers differently
    lengths = {len(g.token_ids) for gens in alone for g in gens}
    assert min(lengths) < 8 == max(lengths)  # rows left the batch at different steps


@pytest.mark.parametrize("kind", KINDS)
def test_batched_generation_matches_one_set_at_a_time(lm, kind, one_thread):
    same_generations(lm, families(lm)[kind])


def test_batched_generation_on_two_threads_gives_the_same_tokens(lm, two_threads):
    same_generations(lm, families(lm)["neurons"])


def test_every_decode_step_has_the_same_logits(lm, monkeypatch, one_thread):
    """The hidden state the head reads at each step, recorded in both paths (no row finishes early
    here, so the batched rows stay in set-major order)."""
    from pipeline.interventions import decoder
    from pipeline.models.sampling import ExactHead

    seen: list[torch.Tensor] = []
    argmax, head_argmax = ExactHead.argmax, decoder.head_argmax

    def recording(self, hidden):
        seen.append(hidden.clone())
        return argmax(self, hidden)

    def recording_batched(weight, hidden):
        seen.append(hidden.clone())
        return head_argmax(weight, hidden)

    monkeypatch.setattr(ExactHead, "argmax", recording)
    monkeypatch.setattr(decoder, "head_argmax", recording_batched)
    sets = families(lm)["direction"]
    prompts = PROMPTS[:8]
    alone = one_at_a_time(lm, sets, prompts, stop_strings=())
    steps_alone, seen[:] = list(seen), []
    generate_sets(lm, prompts, sets, 8, batch_size=8, stop_strings=())
    assert {g.finish_reason for gens in alone for g in gens} == {"length"}
    assert len(steps_alone) == 8 * len(sets)
    steps = torch.cat(seen).reshape(8, len(sets), len(prompts), -1)  # the head reads 8 rows at a time
    with torch.inference_mode():
        for step in range(8):
            for k in range(len(sets)):
                assert torch.equal(lm.model.lm_head(steps[step, k]), lm.model.lm_head(steps_alone[k * 8 + step])), \
                    f"set {k}, step {step}"


def test_prompts_past_the_sliding_window_run_one_set_at_a_time(lm, one_thread):
    long = ["Context: " + "x" * 60 + f"\nQ: {w}\nA:" for w in WORDS[:4]]  # longer than the window (64)
    sets = families(lm)["neurons"]
    assert generate_sets(lm, long, sets, 8, batch_size=8, stop_strings=STOPS) == \
        one_at_a_time(lm, sets, long, stop_strings=STOPS)


class FakeContext:
    """What sweep_sets reads of an experiment's context: checkpoints (JSON round trip) and progress."""

    def __init__(self):
        self.steps: dict[str, dict[int, str]] = {}

    def checkpoint(self, name):
        ctx = self

        class Checkpoint(dict):
            def __contains__(self, k):
                return k in ctx.steps.setdefault(name, {})

            def __getitem__(self, k):
                return json.loads(ctx.steps[name][k])

            def __setitem__(self, k, v):
                ctx.steps.setdefault(name, {})[k] = json.dumps(v)

        return Checkpoint()

    def progress(self, iterable, total=None, desc=None):
        return iterable


def byte_judge(kind, text, finish, row, judge):
    """A stand-in for the rule judges, which parse none of the tiny model's random bytes: it reads
    the generation's first byte, so that per-set rates and slopes are numbers that differ by set."""
    return None if not text else "context" if text.encode()[0] % 2 else "memory"


def test_sweep_records_and_per_set_metrics_match_one_set_at_a_time(lm, monkeypatch, one_thread):
    from pipeline.data import build_embedded, counterfactual_item
    from pipeline.steering import judges, neurons
    from pipeline.steering.summary import _slope, matrix, rates

    monkeypatch.setenv("OPENAI_API_KEY", "")
    monkeypatch.setattr(judges, "outcome", byte_judge)
    monkeypatch.setattr(neurons, "MAX_ROWS", 16)  # two sets a pass: three passes for six sets
    capitals = [it for it in build_embedded() if it.family == "capital" and len(it.question) < 40][:12]
    rows = [{"item": it.to_dict(), "context": (cf := counterfactual_item(it, 0, pool=capitals)).context,
             "false_answer": cf.false_answer} for it in capitals]
    taskset = SimpleNamespace(prompts={"compliance": [f"Q: {it.question}\nA:" for it in capitals]},
                              rows={"compliance": rows}, paper=False)
    cfg = SimpleNamespace(batch_size=8, max_new_tokens=4)
    rng = np.random.default_rng(1)
    alphas = [0.0, 3.0]
    draws = [{0: rng.choice(lm.d_ffn, 4, replace=False).tolist(), 1: rng.choice(lm.d_ffn, 4, replace=False).tolist()}
             for _ in range(3)]
    sets = NeuronSets([d for d in draws for _ in alphas], alphas * 3)
    steps = [(f"seed{s}", k) for s in range(3) for k in range(2)]
    one = neurons.sweep_sets(FakeContext(), cfg, lm, taskset, sets, steps, "random", batched=False)
    ctx = FakeContext()
    many = neurons.sweep_sets(ctx, cfg, lm, taskset, sets, steps, "random")
    assert many == one  # texts, finish reasons and every judge's outcome per item
    a, per_set = np.array(alphas), []
    for s in range(3):
        M1, M2 = (matrix(r[2 * s: 2 * s + 2], "compliance") for r in (one, many))
        np.testing.assert_array_equal(M1, M2)
        np.testing.assert_array_equal(rates(M1), rates(M2))
        assert _slope(a, M1) == _slope(a, M2)
        per_set.append((*rates(M1), _slope(a, M1)))
    assert not np.isnan(per_set).any() and len(set(per_set)) == 3  # real numbers, a different one per set
    # a resumed run reads every set back from its checkpoint step, generating nothing
    monkeypatch.setattr(neurons, "score_sets", lambda *a, **k: pytest.fail("regenerated a checkpointed set"))
    assert neurons.sweep_sets(ctx, cfg, lm, taskset, sets, steps, "random") == many


def next_token_pairs(lm, kind):
    """(batched, alone) next-token logits per set, on left-padded prompts of different lengths."""
    from pipeline.interventions.decoder import next_token_logits

    sets = families(lm)[kind]
    prompts = PROMPTS[:3] + ["Q: x?\nA:", "Context: a longer context than the others.\nQ: y\nA:"]
    enc = lm.tokenizer(prompts, return_tensors="pt", padding=True, padding_side="left")
    batched = next_token_logits(lm, prompts, sets, max_rows=10)  # two sets a pass
    for k in range(len(sets)):
        with torch.inference_mode(), sets.context(lm, k):
            yield batched[k], lm.model(**enc, logits_to_keep=1).logits[:, -1]


@pytest.mark.parametrize("kind", ["neurons", "direction", "heads-mixed"])
def test_next_token_logits_match_one_set_at_a_time_bit_for_bit(lm, kind, one_thread):
    for k, (batched, alone) in enumerate(next_token_pairs(lm, kind)):
        assert torch.equal(batched, alone), f"set {k}"


def test_next_token_logits_on_two_threads_pick_the_same_tokens(lm, two_threads):
    """Not bit for bit on two threads (see the module docstring): the same next tokens, logits
    within float32 rounding of the batch's sums."""
    for k, (batched, alone) in enumerate(next_token_pairs(lm, "neurons")):
        assert torch.equal(batched.argmax(-1), alone.argmax(-1)), f"set {k}"
        torch.testing.assert_close(batched, alone, rtol=0, atol=1e-5)


@pytest.mark.parametrize("method", ["diffmean", "iti"])
def test_kl_calibration_of_many_draws_equals_one_draw_at_a_time(lm, method, one_thread):
    """direction_random calibrates all draws' multipliers together; each draw's KL curve is the one
    its own pass gave before (rows = prompts x multipliers, each row its own vector)."""
    from pipeline.interventions import add_direction, shift_heads
    from pipeline.steering.direction_random import CALIBRATION_MULTIPLIERS, _shifts, mean_kl

    rng = np.random.default_rng(2)
    meta = {"iti_heads": [{"layer": 1, "head": 0}, {"layer": 1, "head": 3}]}
    shape = (1, lm.d_model) if method == "diffmean" else (2, lm.head_dim)
    draws = [rng.normal(size=shape) for _ in range(3)]
    strength, layer, prompts = 1.7, 1, PROMPTS[:4]

    def alone(vectors):  # the calibration pass of one draw, as direction_random ran it before
        rows = [p for p in prompts for _ in range(len(CALIBRATION_MULTIPLIERS) + 1)]
        m = np.tile(np.concatenate([[0.0], CALIBRATION_MULTIPLIERS]), len(prompts))
        hooks = (add_direction(lm, layer, np.outer(m, vectors[0]), strength) if method == "diffmean"
                 else shift_heads(lm, _shifts(meta, vectors, m), strength))
        enc = lm.tokenizer(rows, return_tensors="pt", padding=True, padding_side="left")
        with torch.inference_mode(), hooks:
            logp = torch.log_softmax(lm.model(**enc, logits_to_keep=1).logits[:, -1].float(), dim=-1)
        logp = logp.reshape(len(prompts), len(CALIBRATION_MULTIPLIERS) + 1, -1)
        return (logp[:, :1].exp() * (logp[:, :1] - logp[:, 1:])).sum(-1).mean(0).numpy()

    scaled = [0.0 * draws[0]] + [m * v for v in draws for m in CALIBRATION_MULTIPLIERS]
    sets = (DirectionSets([layer] * len(scaled), [v[0] for v in scaled], [strength] * len(scaled)) if method == "diffmean"
            else HeadSets([_shifts(meta, v, None) for v in scaled], [strength] * len(scaled)))
    together = mean_kl(lm, prompts, sets, rows_per_pass=40).reshape(len(draws), -1)  # 10 sets a pass
    for k, v in enumerate(draws):
        np.testing.assert_array_equal(together[k], alone(v))
