"""Text classifier builder (issue 4). Placeholder until implemented."""


def build_text_classifier(*args, **kwargs):
    raise NotImplementedError("build_text_classifier is being written (issue 4).")
