"""Shipped model weights; see README.md in this folder for the model card."""
