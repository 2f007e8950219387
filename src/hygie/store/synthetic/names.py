"""French given names, surnames, street names and towns for synthetic identities.

These are plain facts of French naming and geography (common given names by birth
cohort, frequent surnames, usual street names, towns of Indre-et-Loire and
Loir-et-Cher with their postal code and approximate town-centre coordinates). They are
combined at random, so a generated identity matches no real person.
"""

from __future__ import annotations

from typing import NamedTuple


class Town(NamedTuple):
    """A commune: name, postal code, département number, centre coordinates, weight.

    ``weight`` is roughly the population in thousands, used to draw home towns so
    that large towns get more patients.
    """

    name: str
    postal_code: str
    department: str
    latitude: float
    longitude: float
    weight: float


#: Given names common among people born before 1960.
GIVEN_NAMES_OLDER: dict[str, tuple[str, ...]] = {
    "male": (
        "Jean", "Pierre", "Michel", "André", "Jacques", "Bernard", "René", "Marcel",
        "Roger", "Louis", "Claude", "Gérard", "Robert", "Henri", "Georges", "Paul",
        "Maurice", "Raymond", "Lucien", "Fernand", "Daniel", "Alain", "Guy", "Roland",
        "Yves", "Gilbert", "Christian", "Jean-Claude", "Jean-Pierre", "Francis",
    ),
    "female": (
        "Marie", "Jeanne", "Monique", "Françoise", "Jacqueline", "Simone", "Suzanne",
        "Denise", "Colette", "Yvette", "Madeleine", "Odette", "Paulette", "Germaine",
        "Marguerite", "Micheline", "Nicole", "Josette", "Ginette", "Christiane",
        "Andrée", "Huguette", "Raymonde", "Lucienne", "Geneviève", "Annie", "Danielle",
        "Éliane", "Marie-Thérèse", "Yvonne",
    ),
}

#: Given names common among people born between 1960 and 1989.
GIVEN_NAMES_MIDDLE: dict[str, tuple[str, ...]] = {
    "male": (
        "Philippe", "Patrick", "Thierry", "Pascal", "Éric", "Frédéric", "Stéphane",
        "Laurent", "Olivier", "Christophe", "Nicolas", "Sébastien", "David", "Julien",
        "Vincent", "Jérôme", "Cédric", "Franck", "Didier", "Bruno", "Fabrice",
        "Arnaud", "Guillaume", "Mathieu", "Romain", "Benoît", "Emmanuel", "Grégory",
        "Ludovic", "Xavier",
    ),
    "female": (
        "Nathalie", "Isabelle", "Sylvie", "Catherine", "Valérie", "Christine",
        "Sandrine", "Véronique", "Stéphanie", "Céline", "Sophie", "Virginie", "Aurélie",
        "Karine", "Laurence", "Corinne", "Élodie", "Émilie", "Julie", "Caroline",
        "Anne", "Delphine", "Hélène", "Patricia", "Martine", "Florence", "Audrey",
        "Mélanie", "Séverine", "Carole",
    ),
}

#: Given names common among people born from 1990 on.
GIVEN_NAMES_YOUNGER: dict[str, tuple[str, ...]] = {
    "male": (
        "Lucas", "Hugo", "Louis", "Gabriel", "Arthur", "Jules", "Raphaël", "Léo",
        "Adam", "Nathan", "Thomas", "Théo", "Maxime", "Alexandre", "Antoine", "Quentin",
        "Clément", "Enzo", "Tom", "Paul", "Noah", "Ethan", "Mathis", "Baptiste",
        "Kylian", "Sacha", "Nolan", "Timéo", "Maël", "Aaron",
    ),
    "female": (
        "Emma", "Léa", "Chloé", "Manon", "Camille", "Inès", "Jade", "Louise", "Alice",
        "Lina", "Zoé", "Sarah", "Clara", "Juliette", "Lucie", "Anaïs", "Pauline",
        "Marine", "Mathilde", "Océane", "Laura", "Rose", "Ambre", "Léna", "Mila",
        "Lou", "Anna", "Romane", "Margaux", "Eva",
    ),
}

#: Frequent French surnames.
SURNAMES: tuple[str, ...] = (
    "Martin", "Bernard", "Thomas", "Petit", "Robert", "Richard", "Durand", "Dubois",
    "Moreau", "Laurent", "Simon", "Michel", "Lefèvre", "Leroy", "Roux", "David",
    "Bertrand", "Morel", "Fournier", "Girard", "Bonnet", "Dupont", "Lambert", "Fontaine",
    "Rousseau", "Vincent", "Muller", "Faure", "André", "Mercier", "Blanc", "Guérin",
    "Boyer", "Garnier", "Chevalier", "François", "Legrand", "Gauthier", "Garcia",
    "Perrin", "Robin", "Clément", "Morin", "Nicolas", "Henry", "Roussel", "Mathieu",
    "Gautier", "Masson", "Marchand", "Duval", "Denis", "Dumont", "Marie", "Lemaire",
    "Noël", "Meyer", "Dufour", "Meunier", "Brun", "Blanchard", "Giraud", "Joly",
    "Rivière", "Lucas", "Brunet", "Gaillard", "Barbier", "Arnaud", "Martinez", "Gérard",
    "Roche", "Renard", "Schmitt", "Roy", "Leroux", "Colin", "Vidal", "Caron", "Picard",
    "Roger", "Fabre", "Aubert", "Lemoine", "Renaud", "Dumas", "Lacroix", "Olivier",
    "Philippe", "Bourgeois", "Pierre", "Benoît", "Rey", "Leclerc", "Rolland",
    "Guillaume", "Lecomte", "Lopez", "Jean", "Dupuy", "Guillot", "Hubert", "Berger",
    "Carpentier", "Sanchez", "Dupuis", "Moulin", "Louis", "Deschamps", "Huet", "Vasseur",
    "Perez", "Boucher", "Fleury", "Royer", "Klein", "Jacquet", "Adam", "Paris", "Poirier",
    "Marty", "Aubry", "Guyot", "Carré", "Charles", "Renault", "Charpentier", "Ménard",
    "Maillard", "Baron", "Bertin", "Bailly", "Hervé", "Schneider", "Fernandez",
    "Le Gall", "Collet", "Léger", "Bouvier", "Julien", "Prévost", "Millet", "Perrot",
    "Daniel", "Le Roux", "Cousin", "Germain", "Breton", "Besson", "Langlois", "Rémy",
    "Le Goff", "Pelletier", "Lévêque", "Perrier", "Leblanc", "Barré", "Lebrun",
    "Marchal", "Weber", "Mallet", "Hamon", "Boulanger", "Jacob", "Monnier", "Michaud",
    "Rodriguez", "Guichard", "Gillet", "Étienne", "Poulain", "Tessier", "Chevallier",
    "Collin", "Chauvin", "Da Silva", "Bouchet", "Gay", "Lemaître", "Bénard", "Maréchal",
    "Humbert", "Reynaud", "Antoine", "Perret", "Barthélemy", "Cordier", "Pichon",
    "Lejeune", "Gilbert", "Lamy", "Delaunay", "Pasquier", "Carlier", "Laporte",
    "Benali", "Nguyen", "Diallo", "Haddad", "Mendes", "Traoré", "Bouzid", "Pereira",
)

#: Kinds of street ("voie").
STREET_TYPES: tuple[str, ...] = (
    "rue", "rue", "rue", "rue", "avenue", "boulevard", "place", "allée", "chemin",
    "impasse", "route", "quai",
)

#: Usual street names, written as they follow the kind of street.
STREET_NAMES: tuple[str, ...] = (
    "de la République", "Victor-Hugo", "Jean-Jaurès", "Pasteur", "des Écoles",
    "de la Gare", "du Général-de-Gaulle", "Nationale", "des Lilas", "du Moulin",
    "de l'Église", "des Tilleuls", "Gambetta", "Voltaire", "Émile-Zola", "Jules-Ferry",
    "de la Mairie", "du Château", "des Vignes", "de la Loire", "du Stade", "de Verdun",
    "de la Paix", "du 8-Mai-1945", "du 11-Novembre", "des Acacias", "de Bretagne",
    "des Peupliers", "du Commerce", "Anatole-France", "Paul-Bert", "Carnot",
    "Louis-Pasteur", "du Port", "des Prés", "du Bourg", "des Cerisiers", "Saint-Martin",
    "de la Fontaine", "des Rosiers", "du Maréchal-Foch", "Jean-Moulin", "des Mésanges",
    "des Vergers", "de la Liberté", "Marcel-Cachin", "de Touraine", "des Coteaux",
    "de la Croix-Blanche", "Alfred-de-Vigny", "Balzac", "Rabelais", "Ronsard",
    "Descartes", "Léonard-de-Vinci", "des Tanneurs", "de la Levée", "du Cher",
)

#: Towns of Indre-et-Loire (37) and Loir-et-Cher (41).
TOWNS: tuple[Town, ...] = (
    Town("Tours", "37000", "37", 47.394, 0.684, 136.0),
    Town("Joué-lès-Tours", "37300", "37", 47.352, 0.662, 38.0),
    Town("Saint-Cyr-sur-Loire", "37540", "37", 47.400, 0.667, 16.0),
    Town("Saint-Pierre-des-Corps", "37700", "37", 47.386, 0.724, 16.0),
    Town("Saint-Avertin", "37550", "37", 47.363, 0.737, 15.0),
    Town("Chambray-lès-Tours", "37170", "37", 47.336, 0.714, 12.0),
    Town("Amboise", "37400", "37", 47.412, 0.982, 13.0),
    Town("Montlouis-sur-Loire", "37270", "37", 47.389, 0.828, 11.0),
    Town("Fondettes", "37230", "37", 47.404, 0.598, 10.0),
    Town("La Riche", "37520", "37", 47.390, 0.656, 10.0),
    Town("Ballan-Miré", "37510", "37", 47.339, 0.614, 8.0),
    Town("Chinon", "37500", "37", 47.167, 0.242, 8.0),
    Town("Loches", "37600", "37", 47.128, 0.995, 6.5),
    Town("Bléré", "37150", "37", 47.326, 0.990, 5.3),
    Town("Château-Renault", "37110", "37", 47.593, 0.911, 5.0),
    Town("Langeais", "37130", "37", 47.325, 0.406, 4.7),
    Town("Sainte-Maure-de-Touraine", "37800", "37", 47.111, 0.622, 4.0),
    Town("Azay-le-Rideau", "37190", "37", 47.262, 0.466, 3.5),
    Town("Blois", "41000", "41", 47.586, 1.335, 46.0),
    Town("Vendôme", "41100", "41", 47.793, 1.066, 16.0),
    Town("Romorantin-Lanthenay", "41200", "41", 47.358, 1.741, 17.0),
    Town("Vineuil", "41350", "41", 47.583, 1.376, 8.0),
    Town("Mer", "41500", "41", 47.705, 1.507, 6.0),
    Town("Contres", "41700", "41", 47.417, 1.429, 6.0),
    Town("Salbris", "41300", "41", 47.424, 2.051, 5.0),
    Town("Lamotte-Beuvron", "41600", "41", 47.600, 2.027, 4.7),
    Town("Selles-sur-Cher", "41130", "41", 47.276, 1.553, 4.5),
    Town("Onzain", "41150", "41", 47.499, 1.176, 4.5),
    Town("Montoire-sur-le-Loir", "41800", "41", 47.753, 0.864, 3.8),
    Town("Montrichard", "41400", "41", 47.343, 1.182, 3.6),
    Town("Saint-Gervais-la-Forêt", "41350", "41", 47.567, 1.357, 3.0),
)


def given_names_for(birth_year: int, gender: str) -> tuple[str, ...]:
    """The given-name pool fitting a birth cohort, so that ages and names agree."""
    pool = GIVEN_NAMES_OLDER if birth_year < 1960 else (
        GIVEN_NAMES_MIDDLE if birth_year < 1990 else GIVEN_NAMES_YOUNGER
    )
    return pool["female" if gender == "female" else "male"]
