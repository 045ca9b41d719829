"""Study 1, interventions: can the detectors steer? Counterfactual-context compliance under neuron
scaling, a DiffMean residual direction and ITI head shifts, each beside negative controls and
its cost elsewhere (factual QA accuracy, answer flips under "Are you sure?" pushback).

    tasks -> neurons (H-neuron alpha sweep)       -> comparison (detection vs steering)
          -> neurons_random (matched random sets)
    directions (DiffMean, ITI heads) -> direction_sweep (strength chosen on a held-out split)
"""
