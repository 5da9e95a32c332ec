"""Labeling: the labelers of the mined frames, and the accept / review / drop routing of their boxes."""
