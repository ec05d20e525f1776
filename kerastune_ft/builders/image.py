"""Image classifier builder (issue 3). Placeholder until implemented."""


def build_image_classifier(*args, **kwargs):
    raise NotImplementedError("build_image_classifier is being written (issue 3).")
