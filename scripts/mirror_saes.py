"""Download a profile's published SAEs (Gemma Scope 2) from the hub into a local mirror, for a
machine without the hub: copy the folder there and point `$CLAIMS_SAE_DIR` at it.

    .venv/bin/python scripts/mirror_saes.py ~/sae-mirror                  # hub profile, its layers and width
    .venv/bin/python scripts/mirror_saes.py ~/sae-mirror --layers 3 7 11 15 --d-sae 262144
    CLAIMS_SAE_DIR=~/sae-mirror .venv/bin/python -m claims --profile hub verify --only sae-explained-variance

The mirror holds <release>/<sae_id>/{cfg.json, sae_weights.safetensors}, as sae-lens's save_model
writes them (pipeline/saefeatures/published.py reads them with SAE.load_from_disk).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    from pipeline.saefeatures.config import PUBLISHED
    from pipeline.saefeatures.published import mirror

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dest", type=Path, help="the mirror's folder (created)")
    parser.add_argument("--profile", choices=sorted(PUBLISHED), default="hub")
    parser.add_argument("--layers", type=int, nargs="+", help="decoder layers (default: the profile's)")
    parser.add_argument("--d-sae", type=int, help="latents per SAE (default: the profile's width)")
    args = parser.parse_args()
    for folder in mirror(args.dest, args.profile, tuple(args.layers) if args.layers else None, args.d_sae):
        print(folder)


if __name__ == "__main__":
    main()
