"""Data loading for images and texts (issue 2). Placeholder until implemented."""
