"""Generated book pages: the reproduction scorecard, the build status and the real-model workload."""
