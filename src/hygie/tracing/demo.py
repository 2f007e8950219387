"""The test sites of ``hygie demo``: where the demo territory's people get tested.

The public list (data.gouv.fr "sites de prélèvements") is imported with ``hygie tracing
import-sites``; the demo has no such file, so it lists sites of its own territory: a
screening centre at each hospital (PCR, by appointment), a laboratory (PCR, walk-in) in
each town of 10,000 inhabitants or more, and a pharmacy (antigenic tests) in every
town, at the towns' centres. Nothing is done when sites are already listed.
"""

from __future__ import annotations

from typing import Any

#: Towns with at least this many thousand inhabitants also get a laboratory.
LAB_TOWN_WEIGHT = 10.0


def demo_sites() -> list[Any]:
    """The demo territory's test sites (``TestSite``), hospitals first."""
    from hygie.store.synthetic.names import TOWNS
    from hygie.store.synthetic.territory import HOSPITALS
    from hygie.tracing.testsites import TestSite

    towns = {t.name: t for t in TOWNS}
    sites = []
    for hospital in HOSPITALS:
        town = towns[hospital.town]
        sites.append(TestSite(
            rs=f"Centre de dépistage – {hospital.alias}",
            adresse=f"{hospital.street}, {town.postal_code} {town.name}",
            latitude=town.latitude, longitude=town.longitude, mod_prel="Drive et sur place",
            public="Tout public", horaire="Lundi au samedi 8h-18h", check_rdv="Sur rendez-vous",
            tel_rdv=hospital.phone, web_rdv="", do_prel=True, do_antigenic=False))
    for town in TOWNS:
        if town.weight >= LAB_TOWN_WEIGHT:
            sites.append(TestSite(
                rs=f"Laboratoire de biologie médicale de {town.name}",
                adresse=f"Centre-ville, {town.postal_code} {town.name}",
                latitude=town.latitude + 0.004, longitude=town.longitude - 0.004,
                mod_prel="Sur place", public="Tout public", horaire="Lundi au vendredi 7h-19h",
                check_rdv="Sans rendez-vous", tel_rdv="", web_rdv="", do_prel=True,
                do_antigenic=True))
        sites.append(TestSite(
            rs=f"Pharmacie de {town.name}", adresse=f"Place de la mairie, {town.postal_code} "
            f"{town.name}", latitude=town.latitude - 0.003, longitude=town.longitude + 0.003,
            mod_prel="Sur place", public="Tout public (plus de 11 ans)",
            horaire="Lundi au samedi 9h-19h", check_rdv="Sans rendez-vous", tel_rdv="",
            web_rdv="", do_prel=False, do_antigenic=True))
    return sites


def seed_demo(platform: Any) -> str:
    """List the demo's test sites (once); say what was done."""
    from hygie.tracing.testsites import load_sites, replace_sites

    existing = load_sites(platform.engine)
    if existing:
        return f"{len(existing)} test sites already listed"
    stored = replace_sites(platform.engine, demo_sites())
    return f"{stored} test sites listed (hospitals, laboratories, pharmacies)"
