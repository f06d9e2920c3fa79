"""The driver's MLflow store: a new sqlite file is published only once its tables exist."""

import mlflow.store.db.utils as db_utils
from mlflow import MlflowClient

from vaderbench.runner.tracking import EXPERIMENT_KIND, Tracker, default_store, mlflow_ui_command, runs_page_url


def spy_on_table_creation(monkeypatch, during):
    real = db_utils._initialize_tables

    def spy(engine):
        during()
        real(engine)

    monkeypatch.setattr(db_utils, "_initialize_tables", spy)


def test_the_store_file_appears_only_after_its_tables_are_built(tmp_path, monkeypatch):
    db = tmp_path / "mlflow.db"
    seen = []
    spy_on_table_creation(monkeypatch, lambda: seen.append(db.exists()))
    tracker = Tracker(default_store(tmp_path), "study", tmp_path / "mlartifacts")
    # a reader polling the path while the tables were built (as `mlflow ui` or a test may) found nothing to open
    assert seen == [False]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlflow.db"]
    experiment = MlflowClient(default_store(tmp_path)).get_experiment(tracker.experiment_id)
    assert experiment.name == "study" and experiment.artifact_location == (tmp_path / "mlartifacts").as_uri()


def test_a_store_another_process_published_first_is_kept(tmp_path, monkeypatch):
    db = tmp_path / "mlflow.db"
    started = []

    def other_process_publishes():
        if not started:  # once: the other store's own table creation comes through here too
            started.append(True)
            MlflowClient(default_store(tmp_path)).create_experiment("theirs")

    spy_on_table_creation(monkeypatch, other_process_publishes)
    Tracker(default_store(tmp_path), "ours", tmp_path / "mlartifacts")
    names = {e.name for e in MlflowClient(default_store(tmp_path)).search_experiments()}
    assert {"theirs", "ours"} <= names
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlflow.db"] and db.is_file()


def test_a_study_s_parent_run_records_commit_machine_and_time_and_the_report_header_names_them(tmp_path):
    from vaderbench.provenance import commit, cpu_model
    from vaderbench.report.build import provenance_lines

    tracker = Tracker(default_store(tmp_path), "study", tmp_path / "mlartifacts")
    parent = tracker.start_parent(tmp_path / "study.yaml", "name: study\n", trials=1)
    tracker.log_usage(parent, 120.0, 0.9, 0.8)
    tracker.log_usage(parent, 60.0, 0.7, 0.6)  # resumed
    tags = tracker.client.get_run(parent).data.tags
    assert tags["machine.cpu"] == cpu_model() and tags["vaderbench.commit"] == commit()
    (line,) = provenance_lines(tracker.client, parent)
    assert f"commit `{commit()}`" in line and cpu_model() in line
    assert "wall time 3.0 min over 2 invocations (resumed), the cores 70% busy (60% by the study's own" in line


def test_a_new_experiment_opens_on_its_runs_and_a_kind_chosen_in_the_ui_stays(tmp_path):
    uri = default_store(tmp_path)
    client = MlflowClient(uri)
    tracker = Tracker(uri, "study", tmp_path / "mlartifacts")
    assert client.get_experiment(tracker.experiment_id).tags[EXPERIMENT_KIND[0]] == "custom_model_development"
    # a store from before the tag gets it; a kind a user chose in the UI is left alone
    old = client.create_experiment("old")
    chosen = client.create_experiment("chosen", tags={EXPERIMENT_KIND[0]: "genai_development"})
    Tracker(uri, "old", None), Tracker(uri, "chosen", None)
    assert client.get_experiment(old).tags[EXPERIMENT_KIND[0]] == "custom_model_development"
    assert client.get_experiment(chosen).tags[EXPERIMENT_KIND[0]] == "genai_development"


def test_the_runs_page_is_on_the_tracking_server_or_on_mlflow_ui():
    assert runs_page_url("http://10.0.0.5:5000/", "7") == "http://10.0.0.5:5000/#/experiments/7/runs"
    assert runs_page_url("https://mlflow.example.org", "7") == "https://mlflow.example.org/#/experiments/7/runs"
    assert runs_page_url("sqlite:////data/mlflow.db", "12") == "http://127.0.0.1:5000/#/experiments/12/runs"
    assert "--port 5000" in mlflow_ui_command("sqlite:////data/mlflow.db")  # where that page is served
