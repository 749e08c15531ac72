"""loanops: run a loan-approval credit model in production on Kubernetes."""

__version__ = "0.1.0"
