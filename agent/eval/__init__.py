"""Evaluation adapters: benchmark instances as batch tasks, each with the score that judges it."""
