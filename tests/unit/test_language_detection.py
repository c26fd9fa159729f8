"""Language detection on a hand-labelled set: the sample author's documents (English, with
code and links) and short sentences in twelve languages, English among them, about the length of
generated instructions. Any detector that replaces the current one has to clear the same bar."""

import pytest

from sample_author import load_documents
from twin.domain.text import UNDETERMINED, detect_language

LABELLED = [
    (
        "sv",
        (
            "Vi flyttade hela pipelinen till Airflow förra veckan och nu körs allt varje "
            "natt utan problem."
        ),
    ),
    ("sv", "Jag skrev om datamodellen två gånger innan testerna slutade fallera."),
    (
        "sv",
        (
            "Det viktigaste jag har lärt mig om dataplattformar är att varje steg måste "
            "gå att köra om. Om en körning avbryts halvvägs ska nästa körning kunna "
            "fortsätta utan dubbletter, och det kräver att man tänker på nycklar redan "
            "från början."
        ),
    ),
    (
        "de",
        (
            "Wir haben die gesamte Pipeline letzte Woche nach Airflow umgezogen und "
            "seitdem läuft alles stabil."
        ),
    ),
    ("de", ("Ich habe das Datenmodell zweimal umgeschrieben, bevor die Tests endlich grün waren.")),
    (
        "de",
        (
            "Das Wichtigste, was ich über Datenplattformen gelernt habe: Jeder Schritt "
            "muss wiederholbar sein. Wenn ein Lauf abbricht, soll der nächste ohne "
            "Duplikate weitermachen können."
        ),
    ),
    (
        "fr",
        (
            "Nous avons migré tout le pipeline vers Airflow la semaine dernière et tout "
            "fonctionne depuis."
        ),
    ),
    ("fr", "J'ai réécrit le modèle de données deux fois avant que les tests passent enfin."),
    (
        "fr",
        (
            "La leçon la plus importante sur les plateformes de données : chaque étape "
            "doit pouvoir être relancée. Si une exécution s'arrête au milieu, la suivante"
            " doit reprendre sans créer de doublons."
        ),
    ),
    (
        "es",
        (
            "Migramos todo el pipeline a Airflow la semana pasada y desde entonces todo "
            "funciona bien."
        ),
    ),
    ("es", ("Reescribí el modelo de datos dos veces antes de que las pruebas por fin pasaran.")),
    (
        "es",
        (
            "Lo más importante que he aprendido sobre plataformas de datos es que cada "
            "paso debe poder repetirse. Si una ejecución se interrumpe, la siguiente debe"
            " continuar sin duplicados."
        ),
    ),
    (
        "it",
        (
            "Abbiamo spostato tutta la pipeline su Airflow la settimana scorsa e da "
            "allora funziona tutto."
        ),
    ),
    ("it", ("Ho riscritto il modello dei dati due volte prima che i test passassero finalmente.")),
    (
        "it",
        (
            "La cosa più importante che ho imparato sulle piattaforme dati è che ogni "
            "passaggio deve poter essere ripetuto senza creare duplicati."
        ),
    ),
    (
        "nl",
        (
            "We hebben vorige week de hele pipeline naar Airflow verhuisd en sindsdien "
            "draait alles prima."
        ),
    ),
    ("nl", ("Ik heb het datamodel twee keer herschreven voordat de tests eindelijk slaagden.")),
    (
        "nl",
        (
            "Het belangrijkste wat ik over dataplatforms heb geleerd, is dat elke stap "
            "opnieuw moet kunnen draaien zonder dubbele rijen."
        ),
    ),
    (
        "pt",
        (
            "Migramos todo o pipeline para o Airflow na semana passada e desde então tudo"
            " funciona bem."
        ),
    ),
    ("pt", "Reescrevi o modelo de dados duas vezes antes de os testes finalmente passarem."),
    (
        "pt",
        (
            "A lição mais importante sobre plataformas de dados é que cada etapa precisa "
            "poder ser executada de novo sem criar duplicados."
        ),
    ),
    (
        "fi",
        (
            "Siirsimme koko putken Airflow'hun viime viikolla, ja siitä lähtien kaikki on"
            " toiminut hyvin."
        ),
    ),
    ("fi", ("Kirjoitin tietomallin uudelleen kahdesti ennen kuin testit vihdoin menivät läpi.")),
    ("da", ("Vi flyttede hele pipelinen til Airflow i sidste uge, og siden da har alt kørt fint.")),
    ("da", "Jeg omskrev datamodellen to gange, før testene endelig bestod."),
    ("no", ("Vi flyttet hele pipelinen til Airflow forrige uke, og siden da har alt gått fint.")),
    ("no", "Jeg skrev om datamodellen to ganger før testene endelig gikk gjennom."),
    (
        "pl",
        (
            "W zeszłym tygodniu przenieśliśmy cały pipeline do Airflow i od tamtej pory "
            "wszystko działa."
        ),
    ),
    ("pl", "Dwa razy przepisałem model danych, zanim testy w końcu przeszły."),
    ("en", "We moved the whole pipeline to Airflow last week and it has run fine since."),
    ("en", "I rewrote the data model twice before the tests finally passed."),
    ("en", "Ship the DAG after the backfill finishes and the dbt tests pass."),
    ("en", "Idempotent tasks, small commits, and a rerun story for every pipeline."),
    ("en", "Use a Postgres advisory lock so only one sync runs at a time."),
    ("en", "Why did you pick MinHash over SimHash for near-duplicates?"),
    ("en", "Grafana alerts page me when the Triton p95 latency doubles."),
    ("en", "Pin the Airflow constraints file, then upgrade providers one by one."),
    ("en", "How would you backfill a partitioned table without locking it?"),
    ("en", "Kubernetes, Helm, ArgoCD and Terraform: the usual suspects."),
    ("en", "LoRA on one GPU beats full fine-tuning for a style twin."),
    ("en", "Write the dbt model first, then the tests, then the docs."),
    ("en", "What is your take on data contracts between teams?"),
    ("en", "Explain how you evaluate retrieval with recall at five."),
    ("en", "Schema drift broke the nightly load again; we added a contract test."),
    ("en", "Prefer boring technology: Postgres, cron, and a good README."),
    ("de", "Wie testest du Idempotenz in einer Airflow-Pipeline?"),
    ("de", "Führe den Job erneut aus und prüfe, dass sich nichts ändert."),
    ("fr", "Comment testez-vous l'idempotence d'un pipeline Airflow ?"),
    ("es", "¿Cómo pruebas la idempotencia en un pipeline de Airflow?"),
    ("es", "Vuelve a ejecutar el trabajo y comprueba que nada cambia."),
    ("nl", "Hoe test je idempotentie in een Airflow-pipeline?"),
    ("it", "Come verifichi l'idempotenza in una pipeline Airflow?"),
    ("pt", "Como você testa a idempotência num pipeline do Airflow?"),
    ("fi", "Miten testaat idempotenssia Airflow-putkessa?"),
]


@pytest.mark.parametrize(
    ("expected", "text"), LABELLED, ids=[f"{e}-{i}" for i, (e, _) in enumerate(LABELLED)]
)
def test_short_texts_get_their_language(expected: str, text: str) -> None:
    code, probability = detect_language(text)
    assert code == expected
    assert 0.5 < probability <= 1.0


def test_every_sample_document_is_english_and_the_answer_repeats() -> None:
    bodies = [d.body for d in load_documents()]
    first = [detect_language(b) for b in bodies]
    assert {code for code, _ in first} == {"en"}
    assert [detect_language(b) for b in bodies] == first


@pytest.mark.parametrize(
    "text", ["Ship it.", "", "```python\nprint('hello world, this is code')\n```"]
)
def test_too_little_prose_is_undetermined(text: str) -> None:
    assert detect_language(text) == (UNDETERMINED, 0.0)


# Texts at langdetect's edges: runs of spaces, links and addresses it blanks, capitalised words
# it skips, Vietnamese combining marks it folds, texts mostly in another script (it drops their
# Latin letters), CJK, kana and Hangul it maps to one character each.
EDGE_TEXTS = [
    "Read   the  NOTES at https://example.org/a?b=c or write to ops@example.org   today.",
    "THE PIPELINE FAILED AGAIN; We Re-Ran It And NOTHING Changed.  ",
    "  leading and trailing spaces  ",
    "Tiếng Việt có dấu: Người ta nói rằng dữ liệu là vàng.",
    "Tie\u0302\u0301ng Vie\u0323\u0302t (combining marks) và dữ liệu",
    "Данные проверяются каждую ночь, and the Airflow DAG reruns cleanly.",
    "データパイプラインは毎晩実行されます。ひらがな カタカナ",
    "数据管道每晚运行，Airflow 重新运行时没有重复。",
    "데이터 파이프라인은 매일 밤 실행됩니다.",
    "خط أنابيب البيانات يعمل كل ليلة ولا يكرر شيئا",
    "Ελληνικά: η γραμμή δεδομένων τρέχει κάθε βράδυ.",
    "Ș and ț, Romanian: Știu că fiecare pas trebuie să poată fi reluat.",
    "x" * 30 + " " + "ÆØÅ æøå " * 20 + "\u2028 \u00a0 \u200b end",
]


@pytest.mark.parametrize("text", EDGE_TEXTS + [text for _, text in LABELLED])
def test_the_fast_detector_gives_langdetects_own_probabilities(text: str) -> None:
    from langdetect import DetectorFactory
    from langdetect import detect_langs as langdetect_langs

    from twin.domain.language import detect_langs

    DetectorFactory.seed = 0
    expected = [(lang.lang, lang.prob) for lang in langdetect_langs(text)]
    assert [(lang.lang, lang.prob) for lang in detect_langs(text)] == expected


def test_the_fast_detector_gives_langdetects_n_grams_on_the_sample_documents() -> None:
    from langdetect import detector_factory
    from langdetect.detector import Detector as LangdetectDetector

    from twin.domain.language import Detector

    detector_factory.init_factory()
    for doc in load_documents():
        ours, theirs = (
            Detector(detector_factory._factory),
            LangdetectDetector(detector_factory._factory),
        )
        for detector in (ours, theirs):
            detector.append(doc.body)
            detector.cleaning_text()
        assert ours.text == theirs.text
        assert ours._extract_ngrams() == theirs._extract_ngrams()
