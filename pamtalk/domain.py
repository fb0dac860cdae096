"""The platform's fixed vocabularies: Korean regions (시·도) and crops.

Identifiers are lowercase slugs (DESIGN.md); each carries its Korean name. Region codes are
ISO 3166-2:KR (the 2023 revision, which renamed Gangwon and Jeonbuk as special
self-governing provinces: KR-51 and KR-52).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta, timezone

# Korea Standard Time has no daylight saving: a fixed offset needs no tz database.
KST = timezone(timedelta(hours=9), "KST")


@dataclass(frozen=True, slots=True)
class Region:
    slug: str
    name_ko: str
    iso_code: str


@dataclass(frozen=True, slots=True)
class Crop:
    slug: str
    name_ko: str
    category: str


REGIONS: dict[str, Region] = {
    r.slug: r
    for r in (
        Region("seoul", "서울특별시", "KR-11"),
        Region("busan", "부산광역시", "KR-26"),
        Region("daegu", "대구광역시", "KR-27"),
        Region("incheon", "인천광역시", "KR-28"),
        Region("gwangju", "광주광역시", "KR-29"),
        Region("daejeon", "대전광역시", "KR-30"),
        Region("ulsan", "울산광역시", "KR-31"),
        Region("sejong", "세종특별자치시", "KR-50"),
        Region("gyeonggi", "경기도", "KR-41"),
        Region("gangwon", "강원특별자치도", "KR-51"),
        Region("chungbuk", "충청북도", "KR-43"),
        Region("chungnam", "충청남도", "KR-44"),
        Region("jeonbuk", "전북특별자치도", "KR-52"),
        Region("jeonnam", "전라남도", "KR-46"),
        Region("gyeongbuk", "경상북도", "KR-47"),
        Region("gyeongnam", "경상남도", "KR-48"),
        Region("jeju", "제주특별자치도", "KR-49"),
    )
}

CROPS: dict[str, Crop] = {
    c.slug: c
    for c in (
        # The items of the Jeju produce data (TG, BC, CB, CR, RD).
        Crop("tangerine", "감귤", "fruit"),
        Crop("broccoli", "브로콜리", "vegetable"),
        Crop("cabbage", "양배추", "vegetable"),
        Crop("carrot", "당근", "vegetable"),
        Crop("radish", "무", "vegetable"),
        # Korean staples.
        Crop("rice", "쌀", "cereal"),
        Crop("barley", "보리", "cereal"),
        Crop("soybean", "콩", "pulse"),
        Crop("napa_cabbage", "배추", "vegetable"),
        Crop("onion", "양파", "vegetable"),
        Crop("garlic", "마늘", "vegetable"),
        Crop("green_onion", "대파", "vegetable"),
        Crop("chili_pepper", "고추", "vegetable"),
        Crop("potato", "감자", "vegetable"),
        Crop("sweet_potato", "고구마", "vegetable"),
        Crop("cucumber", "오이", "vegetable"),
        Crop("zucchini", "애호박", "vegetable"),
        Crop("spinach", "시금치", "vegetable"),
        Crop("lettuce", "상추", "vegetable"),
        Crop("tomato", "토마토", "vegetable"),
        Crop("perilla", "깻잎", "vegetable"),
        Crop("mushroom", "버섯", "vegetable"),
        Crop("apple", "사과", "fruit"),
        Crop("pear", "배", "fruit"),
        Crop("grape", "포도", "fruit"),
        Crop("peach", "복숭아", "fruit"),
        Crop("persimmon", "감", "fruit"),
        Crop("strawberry", "딸기", "fruit"),
        Crop("watermelon", "수박", "fruit"),
        Crop("korean_melon", "참외", "fruit"),
    )
}

# The Jeju data's item and location codes (../shared/data/README.md).
JEJU_ITEMS = {"TG": "tangerine", "BC": "broccoli", "CB": "cabbage", "CR": "carrot", "RD": "radish"}
JEJU_LOCATIONS = {"J": "jeju", "S": "seoul"}
