"""Published SAEs (the hub and paper profiles: Gemma Scope 2 through sae-lens), offline: the release
table against sae-lens's own directory; SAE.from_pretrained through sae-lens's Gemma Scope 2 loader
on files served from a folder; a local mirror ($CLAIMS_SAE_DIR) in sae-lens's on-disk format loaded
through the same code path as the hub, its encode and decode against a direct computation; and the
hub profile's chain on a stand-in model, with Neuronpedia links on its top features."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from claims.context import Upstream
from claims.experiment import make_node
from claims.project import Project
from claims.runner import Runner
from tests.saecorpus import write_tree

ROOT = Path(__file__).resolve().parents[1]
RELEASE, SAE_ID = "gemma-scope-2-270m-pt-res", "layer_12_width_16k_l0_medium"
NPID = "gemma-3-270m/12-gemmascope-2-res-16k"
D_MODEL = 64  # the tiny model's residual stream


def jumprelu(d_in: int, d_sae: int, seed: int, layer: int):
    """A random JumpReLU SAE configured as sae-lens loads Gemma Scope 2 (no input centring, no
    normalisation), thresholds low enough that some latents fire on every token."""
    import torch
    from sae_lens import JumpReLUSAE, JumpReLUSAEConfig

    cfg = JumpReLUSAEConfig(d_in=d_in, d_sae=d_sae, dtype="float32", device="cpu", apply_b_dec_to_input=False,
                            normalize_activations="none")
    cfg.metadata.hook_name = f"blocks.{layer}.hook_resid_post"
    cfg.metadata.model_name = "google/gemma-3-270m"
    sae = JumpReLUSAE(cfg)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn(d_in, d_sae, generator=g) / d_in ** 0.5)
        sae.b_enc.copy_(0.1 * torch.randn(d_sae, generator=g))
        sae.threshold.copy_(0.3 * torch.rand(d_sae, generator=g))
        sae.W_dec.copy_(torch.randn(d_sae, d_in, generator=g) / d_sae ** 0.5)
        sae.b_dec.copy_(0.1 * torch.randn(d_in, generator=g))
    return sae


def write_mirror(root: Path, release: str, sae_id: str, layer: int, d_in: int = D_MODEL, d_sae: int = 48,
                 seed: int = 0) -> dict:
    """One SAE in a mirror laid out as <root>/<release>/<sae_id>/ (sae-lens's save_model); its tensors."""
    sae = jumprelu(d_in, d_sae, seed, layer)
    sae.save_model(root / release / sae_id)
    return {name: p.detach().clone() for name, p in sae.named_parameters()}


def direct(w: dict, x):
    """Gemma Scope's JumpReLU written out: codes = pre * [pre > threshold] with pre = x W_enc + b_enc
    (the thresholds are positive, so the ReLU is implied); reconstruction = codes W_dec + b_dec."""
    pre = x @ w["W_enc"] + w["b_enc"]
    codes = pre * (pre > w["threshold"])
    return codes, codes @ w["W_dec"] + w["b_dec"]


def residuals(layer: int = 1):
    """(T, 64) residual stream of the tiny model on a sentence."""
    from pipeline.models import load
    from pipeline.saefeatures.residuals import read_layers, tokenize

    lm = load("tiny")
    ids, mask = tokenize(lm.tokenizer, ["The lantern guards the old bridge."])
    return read_layers(lm, ids, mask, [layer])[layer][0]


def test_the_release_table_names_saes_that_sae_lens_lists():
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    from pipeline.models import hub, paper
    from pipeline.saefeatures.config import PROFILES, PUBLISHED, published_sae

    directory = get_pretrained_saes_directory()
    models = {"hub": hub.MODEL_ID, "paper": paper.MODEL_ID}
    for profile, releases in PUBLISHED.items():
        for release in releases:
            assert directory[release.id].model == models[profile]
            for layer in release.layers:
                for width in release.widths:
                    assert release.sae_id(layer, width) in directory[release.id].saes_map
        # the default SAEs are the ones Neuronpedia indexes
        for layer in PROFILES[profile]["layers"]:
            rel, sae_id = published_sae(profile, layer, PROFILES[profile]["d_sae"])
            assert directory[rel].neuronpedia_id.get(sae_id)
    assert published_sae("hub", 12, 16384) == (RELEASE, SAE_ID)
    assert published_sae("hub", 12, 262144) == (RELEASE, "layer_12_width_262k_l0_medium")
    assert published_sae("hub", 3, 16384) == ("gemma-scope-2-270m-pt-res-all", "layer_3_width_16k_l0_small")
    assert published_sae("paper", 17, 16384) == ("gemma-scope-2-4b-it-res", "layer_17_width_16k_l0_medium")


@pytest.mark.parametrize(("settings", "message"), [
    ({"d_sae": 2048}, "d_sae 2048 is not a published width (16384, 65536, 262144, 1048576)"),
    ({"layers": [3], "d_sae": 65536}, "no published SAE for layer 3 at width 65k on profile 'hub'"),
    ({"layers": [18]}, "no published SAE for layer 18 at width 16k on profile 'hub'"),
])
def test_a_hub_config_without_a_published_sae_is_refused(settings, message):
    from pydantic import ValidationError

    from pipeline.saefeatures.config import SAEConfig

    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        SAEConfig(profile="hub", **settings)


def test_a_mirror_loads_through_the_same_path_as_the_hub(tmp_path, monkeypatch):
    """$CLAIMS_SAE_DIR: SAE.load_from_disk on the mirror's folder; unset: SAE.from_pretrained. Either
    way `adopt` makes the study's dictionary, and its codes are the JumpReLU computed by hand."""
    import torch
    from sae_lens import SAE

    from pipeline.saefeatures import published
    from pipeline.saefeatures.dictionary import Dictionary, load_sae, save_sae

    weights = write_mirror(tmp_path / "mirror", RELEASE, SAE_ID, layer=12)
    monkeypatch.setenv("CLAIMS_SAE_DIR", str(tmp_path / "mirror"))
    sae, info = published.load(RELEASE, SAE_ID, layer=12, d_model=D_MODEL)
    assert info == {"release": RELEASE, "sae_id": SAE_ID, "source": "mirror", "architecture": "jumprelu",
                    "neuronpedia_id": NPID, "expected_l0": 60.0}
    x = residuals()
    codes, recon = direct(weights, x)
    assert (codes > 0).any(dim=1).all() and (codes == 0).any()  # every token fires some latents, not all
    d = Dictionary(layer=12, name="L12", sae=load_sae(save_sae(sae)), neuronpedia_id=info["neuronpedia_id"])
    assert d.encode(x).shape == (len(x), 48) and d.decode(d.encode(x)).shape == (len(x), D_MODEL)
    torch.testing.assert_close(d.encode(x), codes)
    torch.testing.assert_close(d.decode(d.encode(x)), recon)
    torch.testing.assert_close(d.decoder_rows([3, 7]), weights["W_dec"][[3, 7]])
    assert d.link(7) == f"https://neuronpedia.org/{NPID}/7"

    asked = []

    def from_pretrained(release, sae_id, device="cpu", **kwargs):  # the hub, serving the same SAE
        asked.append((release, sae_id))
        return SAE.load_from_disk(tmp_path / "mirror" / release / sae_id, device=device)

    monkeypatch.delenv("CLAIMS_SAE_DIR")
    monkeypatch.setattr(SAE, "from_pretrained", from_pretrained)
    hub_sae, hub_info = published.load(RELEASE, SAE_ID, layer=12, d_model=D_MODEL)
    assert asked == [(RELEASE, SAE_ID)] and hub_info == {**info, "source": "hf-hub"}
    torch.testing.assert_close(hub_sae.encode(x), codes)
    assert hub_sae.cfg.metadata.neuronpedia_id == NPID


def test_a_mirror_that_does_not_fit_is_refused(tmp_path, monkeypatch):
    from pipeline.saefeatures import published

    monkeypatch.setenv("CLAIMS_SAE_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=rf"CLAIMS_SAE_DIR=.*{SAE_ID} lacks cfg.json, sae_weights.safetensors"):
        published.load(RELEASE, SAE_ID, layer=12, d_model=D_MODEL)
    write_mirror(tmp_path, RELEASE, SAE_ID, layer=12)
    with pytest.raises(ValueError, match="the SAE reads 64 dimensions, the model's residual stream has 640"):
        published.load(RELEASE, SAE_ID, layer=12, d_model=640)
    write_mirror(tmp_path, RELEASE, "layer_9_width_16k_l0_medium", layer=12)  # a folder with the wrong SAE in it
    with pytest.raises(ValueError, match="trained on blocks.12.hook_resid_post, not the residual stream after layer 9"):
        published.load(RELEASE, "layer_9_width_16k_l0_medium", layer=9, d_model=D_MODEL)


@pytest.mark.parametrize(("profile", "layer", "repo", "npid"), [
    ("hub", 12, "google/gemma-scope-2-270m-pt", NPID),
    ("paper", 17, "google/gemma-scope-2-4b-it", "gemma-3-4b-it/17-gemmascope-2-res-16k"),
])
def test_from_pretrained_runs_sae_lens_gemma_scope_loader_on_a_stand_in_hub(tmp_path, monkeypatch, profile, layer,
                                                                           repo, npid):
    """SAE.from_pretrained(release, sae_id) with sae-lens's Gemma Scope 2 loader reading Gemma Scope's
    own files (params.safetensors, lower-case names) from a folder in place of the hub."""
    import torch
    from sae_lens.loading import pretrained_sae_loaders as loaders
    from safetensors.torch import save_file

    from pipeline.saefeatures import published
    from pipeline.saefeatures.config import published_sae

    release, sae_id = published_sae(profile, layer, 16384)
    folder = tmp_path / "hub" / "resid_post" / sae_id
    folder.mkdir(parents=True)
    d_in, d_sae = 64, 32
    weights = {"w_enc": torch.randn(d_in, d_sae), "w_dec": torch.randn(d_sae, d_in), "b_enc": torch.zeros(d_sae),
               "b_dec": torch.zeros(d_in), "threshold": torch.full((d_sae,), 0.1)}
    save_file(weights, folder / "params.safetensors")
    asked = []

    def download(repo_id, filename, subfolder=None, **kwargs):
        asked.append(repo_id)
        path = tmp_path / "hub" / (f"{subfolder}/{filename}" if subfolder else filename)
        if not path.exists():
            from huggingface_hub.errors import EntryNotFoundError

            raise EntryNotFoundError(f"{filename} not found")
        return str(path)

    monkeypatch.delenv("CLAIMS_SAE_DIR", raising=False)
    monkeypatch.setattr(loaders, "hf_hub_download", download)
    monkeypatch.setattr(loaders, "get_safetensors_tensor_shapes",
                        lambda repo_id, path: {k: list(v.shape) for k, v in weights.items()})
    sae, info = published.load(release, sae_id, layer=layer, d_model=d_in)
    assert asked and set(asked) == {repo}
    assert sae.cfg.d_in == d_in and sae.cfg.d_sae == d_sae and info["architecture"] == "jumprelu"
    assert info["neuronpedia_id"] == npid == sae.cfg.metadata.neuronpedia_id and info["source"] == "hf-hub"
    x = torch.randn(3, d_in)
    expected = torch.relu(x @ weights["w_enc"]) * ((x @ weights["w_enc"]) > 0.1)
    torch.testing.assert_close(sae.encode(x), expected)


def test_mirror_writes_what_the_mirror_source_reads_and_the_key_follows_its_bytes(tmp_path, monkeypatch):
    from sae_lens import SAE

    from pipeline.saefeatures import published

    made = {}

    def from_pretrained(release, sae_id, device="cpu", **kwargs):
        made[sae_id] = jumprelu(D_MODEL, 16, len(made), int(sae_id.split("_")[1]))
        return made[sae_id]

    monkeypatch.setattr(SAE, "from_pretrained", from_pretrained)
    written = published.mirror(tmp_path, "hub", layers=(5, 12))
    assert written == [tmp_path / RELEASE / "layer_5_width_16k_l0_medium", tmp_path / RELEASE / SAE_ID]
    monkeypatch.delenv("CLAIMS_SAE_DIR", raising=False)
    assert published.inputs("hub", (5, 12), 16384) == {"source": "hf-hub", "saes": [
        {"release": RELEASE, "sae_id": "layer_5_width_16k_l0_medium"}, {"release": RELEASE, "sae_id": SAE_ID}]}
    monkeypatch.setenv("CLAIMS_SAE_DIR", str(tmp_path))
    sae, _ = published.load(RELEASE, SAE_ID, layer=12, d_model=D_MODEL)
    assert all(np.array_equal(p.detach().numpy(), made[SAE_ID].get_parameter(n).detach().numpy())
               for n, p in sae.named_parameters())
    key = published.inputs("hub", (5, 12), 16384)
    assert key["source"] == "mirror" and all(len(h) == 64 for s in key["saes"] for h in s["sha256"].values())
    write_mirror(tmp_path, RELEASE, SAE_ID, layer=12, seed=9)  # other weights in the same place
    assert published.inputs("hub", (5, 12), 16384) != key


# --------------------------------------------------------------------------------------------
# the hub profile's chain, on a stand-in model (the hub is not reachable here)


def standin_hub():
    """A seeded random Gemma 3 with the tiny model's width and tokenizer and 16 layers, so that the
    hub profile's layers (5, 9, 12, 15) exist; it stands in for google/gemma-3-270m."""
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    from pipeline.models import LoadedModel, tiny

    tok = tiny.tokenizer()
    config = Gemma3TextConfig(vocab_size=len(tok), **{**tiny.CONFIG, "num_hidden_layers": 16,
                                                      "layer_types": ["sliding_attention", "full_attention"] * 8})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        model = Gemma3ForCausalLM(config).to(torch.float32).eval()
    return LoadedModel(model=model, tokenizer=tok, profile="hub", model_id="stand-in", fingerprint=STANDIN)


STANDIN = {"profile": "hub", "model_id": "stand-in for google/gemma-3-270m", "layers": 16}


@pytest.fixture
def hub_project(tmp_path, monkeypatch):
    import pipeline.models as models

    monkeypatch.setitem(models.PROFILES, "hub", (standin_hub, lambda: STANDIN))
    models.clear_cache()
    project = replace(Project.at(ROOT), artifacts_dir=tmp_path / "artifacts", build_dir=tmp_path / "build")
    project.activate()
    yield project
    models.clear_cache()


def test_the_hub_profile_runs_on_mirrored_saes_and_links_its_features_to_neuronpedia(hub_project, tmp_path,
                                                                                     monkeypatch):
    import torch

    from pipeline.saefeatures.dictionary import load_saes

    layers = (5, 9, 12, 15)
    mirror = tmp_path / "mirror"
    weights = {layer: write_mirror(mirror, RELEASE, f"layer_{layer}_width_16k_l0_medium", layer, d_sae=32, seed=layer)
               for layer in layers}
    monkeypatch.setenv("CLAIMS_SAE_DIR", str(mirror))
    config = {"profile": "hub", "root": str(write_tree(tmp_path / "debian")), "seq_len": 32, "train_sequences": 48,
              "heldout_sequences": 8}
    runner = Runner(hub_project)
    saes = runner.ensure(make_node("pipeline.saefeatures.saes", config, "test"))
    entries = saes.result.values["saes"]
    assert [e["layer"] for e in entries] == list(layers) and [e["rank"] for e in entries] == [55, 60, 60, 60]
    assert [e["neuronpedia_id"] for e in entries] == [f"gemma-3-270m/{layer}-gemmascope-2-res-16k" for layer in layers]
    assert {e["training"]["source"] for e in entries} == {"mirror"} and {e["d_sae"] for e in entries} == {32}
    x = torch.randn(5, D_MODEL)
    for d in load_saes(Upstream("saes", saes.node, saes.result, runner.store)):  # as downstream nodes read them
        assert d.link(7) == f"https://neuronpedia.org/gemma-3-270m/{d.layer}-gemmascope-2-res-16k/7"
        torch.testing.assert_close(d.encode(x), direct(weights[d.layer], x)[0])
    ranking = runner.ensure(make_node("pipeline.saefeatures.ranking", {**config, "concept": "kindness",
                                                                       "concepts": ["kindness"]}, "test"))
    for f in ranking.result.values["features"]:
        assert f["neuronpedia"] == f"https://neuronpedia.org/gemma-3-270m/{f['layer']}-gemmascope-2-res-16k/{f['index']}"


def test_the_hub_model_profile_is_registered_by_the_sae_study_only():
    import pipeline.saefeatures  # noqa: F401  (registers the profile)
    from pipeline import models

    assert models.fingerprint("hub") == {
        "profile": "hub", "model_id": "google/gemma-3-270m", "revision": "main", "source": "hf-hub", "dtype": "float32",
    }  # fmt: skip
    source = Path(models.__file__).read_text()
    assert "hub" not in source.split("PROFILES")[1].split("}")[0]  # not in the shared table every study imports
