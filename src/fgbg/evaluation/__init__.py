"""Evaluation on the test split beside trivial baselines, and scoring a user's labelled pairs."""
