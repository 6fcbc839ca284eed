"""Datasets: JSONL pair manifests (`manifest`) and builders from packages that ship real content."""
