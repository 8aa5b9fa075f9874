import json
import subprocess
import sys

from convzoo.cli import main


def test_list_shows_a_table_of_matching_models(capsys):
    assert main(["list", "vgg1?"]) == 0
    out = capsys.readouterr().out
    for name in ("vgg11", "vgg13", "vgg16", "vgg19"):
        assert name in out
    assert "138,357,544" in out and "vgg16_bn" not in out


def test_list_json_and_empty_match(capsys):
    assert main(["list", "resnet5?", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == ["resnet50", "resnet56"] and rows[0]["params"] == 25_557_032
    capsys.readouterr()
    assert main(["list", "nothing*"]) == 2  # a user's mistake: exit code 2, one line naming it
    assert capsys.readouterr().err == "convzoo list: error: no registered model matches 'nothing*'; `convzoo list` names them all\n"


def test_card_alexnet(capsys):
    assert main(["card", "alexnet"]) == 0
    out = capsys.readouterr().out
    assert "ImageNet Classification with Deep Convolutional Neural Networks" in out
    assert "60,965,224" in out and "2012" in out


def test_unknown_model_is_a_clean_error(capsys):
    assert main(["card", "alexnt"]) == 2
    err = capsys.readouterr().err
    assert "alexnet" in err and "Traceback" not in err


def test_the_module_runs_as_a_command():
    done = subprocess.run([sys.executable, "-m", "convzoo", "card", "resnet50", "--json"],
                          capture_output=True, text=True, check=True)
    assert json.loads(done.stdout)["params"] == 25_557_032
