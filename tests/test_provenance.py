from __future__ import annotations

from pathlib import Path

from claims import provenance as prov
from claims.node import Node
from claims.runner import ENGINE_KEY_VERSION


def test_golden_key_is_pinned():
    """A change to how keys are computed must be deliberate: this literal changes with it (rule 3:
    the packages are those the experiment's code imports; rule 2, still honoured for stored
    results, had the same material with engine 2 and a fixed package list)."""
    assert ENGINE_KEY_VERSION == 3
    material = {
        "engine": ENGINE_KEY_VERSION,
        "experiment": "pipeline.hneurons.probe",
        "config": {"C": 1.0, "profile": "embedded", "seed": 42},
        "code": {"pipeline/hneurons/probe.py": "0" * 64},
        "inputs": {"model": "a5fd3b62"},
        "upstream": {"cett": "1" * 64},
        "packages": {"numpy": "2.4.6"},
    }
    key = prov.cache_key(material)
    assert key == "572cd76d8fa069e75221632f59c31f51d66ceec7da3facadde9f75cb7241c375"
    assert prov.cache_key({**material, "engine": 2}) == "c2e60b60aa33c5a6344f88ddb5c6cfc4bfa1f2e2bb4c2b66baa8dcafd01b79be"


def test_node_identity_is_canonical():
    a = Node.make("x", {"b": 1, "a": [1, 2]})
    b = Node.make("x", {"a": [1, 2], "b": 1})
    assert a == b and a.config_hash == b.config_hash and len(a.config_hash) == 12


def test_code_files_follow_project_imports(tmp_path):
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "sub" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "sub" / "exp.py").write_text("import numpy\nfrom . import helper\nfrom ..shared import util\nimport claims.result\n")
    (tmp_path / "pkg" / "sub" / "helper.py").write_text("from pkg.shared.util import f\n")
    (tmp_path / "pkg" / "shared").mkdir()
    (tmp_path / "pkg" / "shared" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "shared" / "util.py").write_text("def f(): pass\n")
    (tmp_path / "pkg" / "unused.py").write_text("")
    files = prov.code_files("pkg.sub.exp", tmp_path)
    assert sorted(files) == [
        "pkg/__init__.py", "pkg/shared/__init__.py", "pkg/shared/util.py",
        "pkg/sub/__init__.py", "pkg/sub/exp.py", "pkg/sub/helper.py",
    ]


def test_redaction():
    env = {"OPENAI_API_KEY": "sk-abc", "HF_TOKEN": "hf_x", "HF_HOME": "/data/hf", "CLAIMS_SEED": "1",
           "CLAIMS_NOTE": "ghp_" + "a" * 36, "PATH": "/usr/bin"}
    recorded = prov.recorded_environment(env)
    assert recorded == {"CLAIMS_NOTE": "<redacted>", "CLAIMS_SEED": "1", "HF_HOME": "/data/hf",
                        "HF_TOKEN": "<redacted>", "OPENAI_API_KEY": "<redacted>"}
    # what picks the CPU kernels, and so the last bits of a result, is recorded too
    numerics = {"MKL_CBWR": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "OPENBLAS_CORETYPE": "Haswell",
                "ONEDNN_MAX_CPU_ISA": "AVX2", "NPY_DISABLE_CPU_FEATURES": "AVX512_ICL", "LANG": "C"}
    assert prov.recorded_environment(numerics) == {k: v for k, v in numerics.items() if k != "LANG"}
    argv = ["verify", "--api-key", "sk-live-123", "--token=abc", "--only", "x", "sk-proj-" + "b" * 40]
    assert prov.redact_argv(argv) == ["verify", "--api-key", "<redacted>", "--token=<redacted>", "--only", "x",
                                      "<redacted>"]


def test_path_scrubber(tmp_path):
    scrub = prov.PathScrubber(tmp_path / "root", tmp_path / "cache")
    data = {"a": f"{tmp_path}/root/pipeline/x.py", "b": [f"{tmp_path}/cache/blobs/ab"], "c": f"{Path.home()}/x"}
    assert scrub(data) == {"a": "./pipeline/x.py", "b": ["$CLAIMS_CACHE/blobs/ab"], "c": "~/x"}
