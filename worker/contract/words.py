"""Word lists shared by the builtin query sets (worker.data.datasets) and the tiny models' tokenizer vocabulary
(worker.models.tiny): light, so that neither loader imports the other."""

from __future__ import annotations

ADJECTIVES = (
    "quiet", "bright", "dark", "old", "young", "small", "large", "green", "red", "blue", "golden", "silver",
    "ancient", "modern", "strange", "gentle", "brave", "clever", "cold", "warm", "tired", "happy", "sad", "curious",
    "careful", "wild", "calm", "noisy", "rapid", "slow", "heavy", "light"
)
NOUNS = (
    "river", "city", "forest", "mountain", "village", "garden", "engine", "robot", "teacher", "doctor", "farmer",
    "child", "dog", "cat", "horse", "bird", "ship", "train", "bridge", "market", "library", "castle", "island",
    "desert", "storm", "lake", "tower", "machine", "painter", "musician"
)
VERBS = (
    "found", "built", "crossed", "watched", "carried", "painted", "repaired", "visited", "opened", "closed",
    "followed", "discovered", "protected", "described", "measured", "changed", "moved", "answered", "reached", "left"
)
PLACES = (
    "Avalon", "Brenmoor", "Calder", "Dunwick", "Elmsford", "Fenwick", "Galloway", "Harrowgate", "Ismere", "Jorvik",
    "Kestrel", "Lindum"
)
NAMES = (
    "Ada", "Bruno", "Clara", "Dmitri", "Elena", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Kira", "Luca", "Mira",
    "Nils", "Olga", "Pavel"
)
TOPICS = ("energy", "transport", "housing", "water", "health", "schools", "farming", "trade", "research", "tourism")
FEELINGS = ("loved", "enjoyed", "liked", "disliked", "hated", "admired", "endured")
QUALITIES = (
    "wonderful", "dull", "moving", "confusing", "brilliant", "forgettable", "charming", "tedious", "clever",
    "predictable"
)
ASPECTS = ("plot", "acting", "music", "ending", "dialogue", "pacing", "camera", "work", "cast", "script")
STYLES = (
    "watercolor painting", "detailed oil painting", "pixel-art scene", "photograph", "pencil sketch", "pastel drawing"
)
LIGHTS = ("at dawn", "at dusk", "under moonlight", "in fog", "in bright sunlight", "by candlelight")

VOCABULARY: tuple[str, ...] = tuple(
    sorted(
        {w.lower() for group in (ADJECTIVES, NOUNS, VERBS, PLACES, NAMES, TOPICS, FEELINGS, QUALITIES, ASPECTS)
         for w in group}
        | {
            "the", "a", "an", "of", "in", "on", "at", "to", "and", "was", "is", "were", "it", "this", "that", "by",
            "with", "from", "for", "its", "who", "what", "when", "where", "which", "how", "many", "year", "years",
            "people", "report", "said", "after", "before", "during", "about", "their", "has", "had"
        }
    )
)
