"""The plugin's own tests: the framework's test kit proves resmlp works with the core."""

from framework.testing import check_part


def test_resmlp_works_with_the_framework(tmp_path):
    metrics = check_part("backbone", "resmlp", tmp_path, ["backbone.blocks=1"])
    assert metrics["model"]["name"] == "resmlp_dense"
