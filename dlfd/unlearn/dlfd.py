"""DLFD one-epoch unlearning (PAPER.md, "The method")."""
