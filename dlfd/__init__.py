"""dlfd: machine unlearning by Distribution-Level Feature Distancing, as a tutorial package."""

__version__ = "0.1.0"
