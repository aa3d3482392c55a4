"""Scoring a model on FER-2013's test splits with the paper's methods (centre, Eval1, Eval2)."""
