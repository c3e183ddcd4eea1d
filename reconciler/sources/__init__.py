"""Where specs come from: the spec directory (watched) and, optionally, a git branch fetched
into a local work tree; plus the git revision a directory is at."""

from reconciler.sources.git import GitSource, GitSourceError, GitSourceStopped
from reconciler.sources.revision import git_revision
from reconciler.sources.specdir import watch_spec_dir

__all__ = ["GitSource", "GitSourceError", "GitSourceStopped", "git_revision", "watch_spec_dir"]
