"""Study 1, detection: do a few feed-forward neurons ("H-neurons") detect hallucination?

The DAG, each step an experiment node with provenance:
    questions -> sample (answers, judge, consistent labels) -> split (balanced, question-disjoint)
    -> activations (CETT per FFN neuron, answer tokens and all tokens) -> probe (L1 logistic)
    -> probe_random (same-size random neuron sets: the control)
"""
