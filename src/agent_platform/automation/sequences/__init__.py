"""Sequences: ordered, delayed steps a lead is enrolled to walk (definition, enrollment and
its step job), and their REST API."""
