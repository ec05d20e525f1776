"""Model assembly: pretrained backbone + frozen layers + regularized head."""
