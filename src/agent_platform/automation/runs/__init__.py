"""The record of every trigger firing, sequence step and rule evaluation."""
