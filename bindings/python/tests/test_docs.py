"""The package's docstring examples run (and so cannot rot); the stubs name what the module has."""

import doctest
import pathlib

import greenmark
import greenmark._greenmark as native
import greenmark.llama_cpp
import greenmark.synthid
import greenmark.transformers


def test_docstrings():
    for module in (greenmark, greenmark.transformers, greenmark.llama_cpp, greenmark.synthid):
        result = doctest.testmod(module, raise_on_error=False)
        assert result.failed == 0, module.__name__
    assert doctest.testmod(greenmark).attempted >= 5


def test_stub_names_match_module():
    import ast

    stub = pathlib.Path(native.__file__).with_name("_greenmark.pyi")
    if not stub.exists():  # installed wheel: the stub sits beside the package
        stub = pathlib.Path(greenmark.__file__).with_name("_greenmark.pyi")
    tree = ast.parse(stub.read_text())
    declared = {n.name for n in tree.body if isinstance(n, ast.ClassDef)}
    exported = {name for name in dir(native) if isinstance(getattr(native, name), type)}
    assert declared == exported
    for cls in tree.body:
        if isinstance(cls, ast.ClassDef) and not cls.name.endswith("Error"):
            members = {n.name for n in cls.body if isinstance(n, ast.FunctionDef) and not n.name.startswith("__")}
            members |= {n.target.id for n in cls.body if isinstance(n, ast.AnnAssign)}
            for name in members:
                assert hasattr(getattr(native, cls.name), name), f"{cls.name}.{name}"


def test_readme_core_example_runs():
    from conftest import readme_blocks

    blocks = [
        b for b in readme_blocks() if not any(s in b for s in ("from transformers", "TextDetector", "llama_cpp"))
    ]
    assert len(blocks) == 1
    exec(compile(blocks[0], "README.md", "exec"), {})
