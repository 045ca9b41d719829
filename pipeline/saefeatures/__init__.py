"""Study 2, SAE features: which sparse-autoencoder features track a concept, and do SAE features
detect and steer hallucination better than neurons?

The DAG, each step an experiment node with provenance:
    corpus (Debian text) -> saes (one TopK SAE per layer, trained with sae-lens; paper: Gemma Scope 2)
        -> reconstruction (explained variance, L0, dead latents, spliced loss; control: rank-k PCA)
    concepts (hand-written sentences labelled 0-3, and their second-pass audit)
        -> extraction (one decoder pass per batch: every layer, every SAE, every cumulative fragment)
        -> ranking (Spearman, monotonicity, AUROC per feature; top features and their pages)
        -> shuffled (the control: the best score under permuted labels)
    detector (SAE features on the detection study's questions and splits, against the neuron probe
              and the log-probability baseline; control: matched random features)
    steering (SAE features scaled through their decoded delta, against H-neuron scaling; control:
              random features matched on activation)
"""

# The `hub` model profile (google/gemma-3-270m from the hub, the weights Gemma Scope 2 was trained
# on) serves this study only, so it is registered here rather than in pipeline/models/__init__.py:
# every experiment imports that module, and a change there would make every result stale.
from pipeline import models as _models  # noqa: E402
from pipeline.models import hub as _hub  # noqa: E402

_models.PROFILES.setdefault("hub", (_hub.load, _hub.fingerprint))
