"""Tests of the MusicNet-layout reader (jaxnotes/data/musicnet.py) and audio loading."""

import numpy as np
import pytest
import soundfile as sf

from jaxnotes.data import audio, musicnet

HEADER = "start_time,end_time,instrument,note,start_beat,end_beat,note_value\n"


def _layout(root, train=("1", "2", "3", "4"), test=("9",), labels_ext=".csv"):
    for split, names in (("train", train), ("test", test)):
        (root / f"{split}_data").mkdir(parents=True, exist_ok=True)
        (root / f"{split}_labels").mkdir(parents=True, exist_ok=True)
        for name in names:
            sf.write(root / f"{split}_data" / f"{name}.wav", np.zeros(4410, np.float32), 44100)
            (root / f"{split}_labels" / f"{name}{labels_ext}").write_text(
                HEADER + "0,100,1,60,0,1,Quarter\n"
            )
    return root


def test_lists_recordings_with_ids(tmp_path):
    """Recordings are found per split, sorted, with numeric ids and their label files."""
    _layout(tmp_path)
    recs = musicnet.list_recordings(str(tmp_path), "train")
    assert [r.piece_id for r in recs] == [1, 2, 3, 4]
    assert recs[0].labels_path.endswith("train_labels/1.csv")
    assert [r.name for r in musicnet.list_recordings(str(tmp_path), "test")] == ["9"]


def test_non_numeric_names_get_stable_ids(tmp_path):
    """A user's own recordings with names get the same id every time."""
    _layout(tmp_path, train=("my_take",), test=())
    (rec,) = musicnet.list_recordings(str(tmp_path), "train")
    assert rec.piece_id == musicnet.piece_id_of("my_take") and rec.piece_id > 0


def test_missing_folder_is_named(tmp_path):
    """A wrong musicnet_dir or a missing split folder names what is missing."""
    with pytest.raises(musicnet.LayoutError, match="config.data.musicnet_dir"):
        musicnet.list_recordings(str(tmp_path / "nowhere"), "train")
    with pytest.raises(musicnet.LayoutError, match="test_data"):
        musicnet.list_recordings(str(tmp_path), "test")


def test_audio_without_labels_is_an_error(tmp_path):
    """An audio file without labels is named rather than silently dropped."""
    _layout(tmp_path)
    (tmp_path / "train_labels" / "2.csv").unlink()
    with pytest.raises(musicnet.LayoutError, match=r"train_data/2.wav: no labels found"):
        musicnet.list_recordings(str(tmp_path), "train")


def test_midi_labels_beside_the_audio(tmp_path):
    """MusicNetEM-style MIDI labels beside the audio are picked up (auto and midi formats)."""
    _layout(tmp_path, train=("5",), test=())
    (tmp_path / "train_labels" / "5.csv").unlink()
    (tmp_path / "train_data" / "5.mid").write_bytes(b"")
    (rec,) = musicnet.list_recordings(str(tmp_path), "train", label_format="auto")
    assert rec.labels_path.endswith("train_data/5.mid")
    with pytest.raises(musicnet.LayoutError):
        musicnet.list_recordings(str(tmp_path), "train", label_format="csv")


def test_validation_split_is_held_out_of_train(tmp_path):
    """Validation recordings come from train, disjoint and deterministic; ids override."""
    _layout(tmp_path, train=tuple(str(i) for i in range(1, 21)))
    recs = musicnet.list_recordings(str(tmp_path), "train")
    train, val = musicnet.split_train_validation(recs, 0.1, seed=3)
    assert len(val) == 2 and not {r.name for r in train} & {r.name for r in val}
    assert len(train) + len(val) == 20
    again = musicnet.split_train_validation(recs, 0.1, seed=3)[1]
    assert [r.name for r in again] == [r.name for r in val]
    _, chosen = musicnet.split_train_validation(recs, 0.1, validation_ids=(7, "8"))
    assert [r.name for r in chosen] == ["7", "8"]
    with pytest.raises(ValueError, match="validation_ids"):
        musicnet.split_train_validation(recs, 0.1, validation_ids=("99",))
    with pytest.raises(ValueError, match="validation_fraction"):
        musicnet.split_train_validation(recs, 1.5)


def test_metadata(tmp_path):
    """musicnet_metadata.csv is read by id; a file without an id column is an error."""
    (tmp_path / "musicnet_metadata.csv").write_text("id,composer,seconds\n1759,Schubert,100\n")
    assert musicnet.read_metadata(str(tmp_path))["1759"]["composer"] == "Schubert"
    (tmp_path / "musicnet_metadata.csv").write_text("x,y\n1,2\n")
    with pytest.raises(musicnet.LayoutError, match="musicnet_metadata.csv"):
        musicnet.read_metadata(str(tmp_path))


def test_audio_is_mixed_down_and_resampled(tmp_path):
    """Stereo at any rate becomes mono at the requested rate."""
    sr = 16000
    t = np.arange(sr) / sr
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 440 * t)], axis=1) * 0.5
    path = tmp_path / "s.flac"
    sf.write(path, stereo.astype(np.float32), sr)
    y = audio.load_audio(str(path), 22050)
    assert y.ndim == 1 and abs(len(y) - 22050) <= 1 and y.dtype == np.float32
    assert audio.audio_info(str(path)) == (sr, sr)


@pytest.mark.parametrize("sr, target_sr", [(16000, 22050), (44100, 22050), (22050, 16000)])
def test_resample_is_librosas_soxr_hq(sr, target_sr):
    """audio.resample (soxr without librosa's import) gives librosa.resample's samples."""
    import librosa

    rng = np.random.default_rng(sr)
    for num_samples in (0, 1, 999, 48_001):
        x_S = rng.standard_normal(num_samples).astype(np.float32)
        want = librosa.resample(x_S, orig_sr=sr, target_sr=target_sr, res_type="soxr_hq")
        got = audio.resample(x_S, sr, target_sr)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    "content, match",
    [
        (b"", "empty"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt garbage", "not a readable audio file"),
        (b"hello, this is text and not audio" * 10, "not a readable audio file"),
    ],
)
def test_bad_audio_names_the_file(tmp_path, content, match):
    """Empty, corrupt or non-audio files raise AudioError naming the file."""
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(audio.AudioError, match=match) as info:
        audio.load_audio(str(path), 22050)
    assert "bad.wav" in str(info.value)


def test_truncated_wav(tmp_path):
    """A wav cut short (header promises more than is there) still loads what it holds or errors clearly."""
    path = tmp_path / "cut.wav"
    sf.write(path, np.zeros(44100, np.float32), 44100, subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    try:
        y = audio.load_audio(str(path))
    except audio.AudioError as e:
        assert "cut.wav" in str(e)
    else:
        assert 0 < len(y) < 44100


def test_zero_sample_wav(tmp_path):
    """A valid wav header with no samples is an error naming the file."""
    path = tmp_path / "none.wav"
    sf.write(path, np.zeros(0, np.float32), 44100)
    with pytest.raises(audio.AudioError, match="none.wav: the file holds no audio"):
        audio.load_audio(str(path))
