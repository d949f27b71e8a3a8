// embedrec web page: search, rate with stars, see recommendations, open similar movies.
"use strict";
const $ = (sel) => document.querySelector(sel);
const ratings = new Map(); // movie_id -> {movie, rating}
let scale = [0.5, 5];

async function api(path, options = {}) {
  const response = await fetch(path, {headers: {"content-type": "application/json"}, ...options});
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
    throw new Error(detail || `HTTP ${response.status}`);
  }
  return body;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function info(movie) {
  // a movie without training ratings in a list: a model that scores movies from their features
  // (genres, release year) recommends it; it has no vector of its own for "similar"
  const unrated = movie.n_ratings === 0;
  return el("div", {class: "info"},
    unrated
      ? el("div", {class: "title"}, movie.title)
      : el("div", {class: "title", title: "Show similar movies", onclick: () => showSimilar(movie)},
           movie.title),
    el("div", {class: "genres"}, movie.genres.join(" · "),
       ...(unrated ? [el("span", {class: "unrated", title: "No ratings in the training data: "
                             + "scored from its genres and release year"}, "not yet rated")] : [])));
}

function stars(movie) {
  const current = ratings.get(movie.movie_id)?.rating ?? 0;
  const box = el("span", {class: "stars", role: "group", "aria-label": `Rate ${movie.title}`});
  for (let value = 1; value <= 5; value++) {
    const star = el("button", {
      class: "star" + (value <= current ? " on" : ""), "data-value": String(value),
      "aria-label": `${value} star${value > 1 ? "s" : ""}`,
      onclick: () => rate(movie, Math.min(Math.max(value, scale[0]), scale[1])),
    }, "★");
    box.append(star);
  }
  return box;
}

function movieRow(movie, extra) {
  const row = el("li", {class: "movie", "data-movie-id": String(movie.movie_id)}, info(movie));
  if (extra) row.append(extra);
  return row;
}

async function search(text) {
  const list = $("#results");
  try {
    const movies = await api(`/movies?search=${encodeURIComponent(text)}&limit=12`);
    list.replaceChildren(...movies.map((m) => movieRow(m, stars(m))));
    if (!movies.length) list.append(el("li", {class: "muted"}, "No movie matches."));
  } catch (error) {
    list.replaceChildren(el("li", {class: "error"}, error.message));
  }
}

function rate(movie, value) {
  ratings.set(movie.movie_id, {movie, rating: value});
  for (const row of document.querySelectorAll(`[data-movie-id="${movie.movie_id}"] .stars`)) {
    row.replaceWith(stars(movie));
  }
  drawRated();
  recommend();
}

function drawRated() {
  const list = $("#rated");
  const rows = [...ratings.values()].map(({movie}) => movieRow(movie, el("span", {},
    stars(movie),
    el("button", {class: "remove", "aria-label": `Remove ${movie.title}`,
                  onclick: () => { ratings.delete(movie.movie_id); drawRated(); recommend(); }}, "✕"))));
  list.replaceChildren(...(rows.length ? rows
    : [el("li", {class: "muted empty"}, "Rate a few movies with the stars.")]));
  $("#rated-count").textContent = ratings.size ? `(${ratings.size})` : "";
}

let pending = 0;
async function recommend() {
  const status = $("#recs-status");
  const list = $("#recommendations");
  if (!ratings.size) {
    list.replaceChildren();
    status.textContent = "Your recommendations appear here after your first rating.";
    return;
  }
  const ticket = ++pending;
  status.textContent = "Thinking…";
  try {
    const body = {ratings: [...ratings.entries()].map(([movie_id, r]) => ({movie_id, rating: r.rating})),
                  k: 10};
    const result = await api("/recommendations", {method: "POST", body: JSON.stringify(body)});
    if (ticket !== pending) return; // a newer request is on its way
    list.replaceChildren(...result.items.map((m) =>
      movieRow(m, predictsRatings
        ? el("span", {class: "score", title: "predicted rating"}, m.score.toFixed(1))
        : el("span", {class: "score", title: "ranking score (this model ranks, it does not predict ratings)"},
             m.score.toFixed(3)))));
    status.textContent = `From ${result.n_used} of your ${result.n_given} ratings.`;
  } catch (error) {
    if (ticket === pending) status.innerHTML = "", status.append(el("span", {class: "error"}, error.message));
  }
}

async function showSimilar(movie) {
  const panel = $("#similar");
  $("#similar-title").textContent = `Movies like ${movie.title}`;
  const list = $("#similar-list");
  list.replaceChildren(el("li", {class: "muted"}, "Loading…"));
  panel.hidden = false;
  try {
    const result = await api(`/movies/${movie.movie_id}/similar?k=10`);
    list.replaceChildren(...result.items.map((m) => movieRow(m, stars(m))));
  } catch (error) {
    list.replaceChildren(el("li", {class: "error"}, error.message));
  }
}

$("#close-similar").addEventListener("click", () => { $("#similar").hidden = true; });
$("#similar").addEventListener("click", (event) => {
  if (event.target.id === "similar") $("#similar").hidden = true;
});
let timer;
$("#search").addEventListener("input", (event) => {
  clearTimeout(timer);
  timer = setTimeout(() => search(event.target.value), 200);
});

let predictsRatings = true;
api("/model").then((model) => {
  scale = model.rating_range;
  predictsRatings = model.predicts_ratings !== false;
  $("#model-info").textContent =
    `${model.model} model trained on ${model.dataset ?? "your data"}: ` +
    `${model.n_items.toLocaleString()} movies, ${model.n_users.toLocaleString()} users. ` +
    "Rate movies you know; nothing is retrained.";
}).catch((error) => { $("#model-info").textContent = error.message; });
search("");
