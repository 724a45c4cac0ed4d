"""fgbg: foreground mask and depth from (bg, fg_bg) pairs, and the dataset that teaches it."""

__version__ = "0.1.0"
