"""Specialization: training data, adapter versions, evaluation and promotion."""
