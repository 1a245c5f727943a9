/* Review inbox (/admin/review): bulk review from the keyboard.

   The page works without this script (check rows, press a button); this adds
   the shortcuts listed on the page: j/k or arrows move between groups, x or
   space selects, a selects the whole page, c/s/o/d/r/u act on the selected
   groups (or the current one when none is selected), n/p change pages, ? shows
   the list. After an action the page reloads and the same position is
   current again, so a run of decisions needs no mouse. No inline script (the
   page's Content-Security-Policy forbids it), nothing fetched from elsewhere. */
(function () {
  "use strict";

  var form = document.getElementById("review-form");
  if (!form) {
    return;
  }
  var rows = Array.prototype.slice.call(form.querySelectorAll("li.group"));
  var selectAll = document.getElementById("select-all");
  var bulkLabel = document.getElementById("bulk-label");
  var help = document.getElementById("keys-help");
  var STORE = "review.position";
  var current = -1;

  function box(row) {
    return row.querySelector('input[name="group"]');
  }

  function mark(row) {
    row.classList.toggle("selected", box(row).checked);
  }

  function focusRow(index) {
    if (!rows.length) {
      return;
    }
    index = Math.max(0, Math.min(rows.length - 1, index));
    if (current >= 0 && rows[current]) {
      rows[current].classList.remove("current");
    }
    current = index;
    var row = rows[current];
    row.classList.add("current");
    row.focus({ preventScroll: true });
    row.scrollIntoView({ block: "nearest" });
  }

  function selected() {
    return rows.filter(function (row) {
      return box(row).checked;
    });
  }

  function setAll(checked) {
    rows.forEach(function (row) {
      box(row).checked = checked;
      mark(row);
    });
    if (selectAll) {
      selectAll.checked = checked;
    }
  }

  // `position`: the first group acted on. Once it has left the list, the next
  // undecided group takes its place, which is where the page resumes.
  function submitWith(button, position) {
    if (!button || button.disabled) {
      return;
    }
    try {
      sessionStorage.setItem(STORE, String(Math.max(position, 0)));
    } catch (e) {
      /* private mode: only the position is lost */
    }
    if (typeof form.requestSubmit === "function") {
      form.requestSubmit(button);
    } else {
      button.click();
    }
  }

  function bulkButton(action) {
    return form.querySelector('.bulk-bar button[value="' + action + '"]');
  }

  function firstSelected() {
    var chosen = selected();
    return chosen.length ? rows.indexOf(chosen[0]) : -1;
  }

  function act(action) {
    var first = firstSelected();
    if (first >= 0) {
      submitWith(bulkButton(action), first);
    } else if (current >= 0) {
      submitWith(rows[current].querySelector('button[data-act="' + action + '"]'), current);
    }
  }

  function relabel() {
    var select = selected().length
      ? bulkLabel
      : current >= 0 && rows[current].querySelector('select[data-role="label"]');
    if (select) {
      select.focus();
    }
  }

  function follow(id) {
    var link = document.getElementById(id);
    if (link) {
      window.location.href = link.href;
    }
  }

  function typing(target) {
    if (!target || !target.tagName) {
      return false;
    }
    var tag = target.tagName;
    if (tag === "TEXTAREA" || tag === "SELECT" || target.isContentEditable) {
      return true;
    }
    return tag === "INPUT" && target.type !== "checkbox";
  }

  // Enter in a label list relabels with it (the bulk list: the selected groups).
  form.addEventListener("keydown", function (event) {
    var target = event.target;
    if (target.tagName !== "SELECT" || event.key !== "Enter") {
      return;
    }
    event.preventDefault();
    if (!target.value) {
      return;
    }
    if (target === bulkLabel) {
      submitWith(bulkButton("relabel"), firstSelected());
    } else {
      var row = target.closest("li.group");
      submitWith(row && row.querySelector('button[data-act="relabel"]'), rows.indexOf(row));
    }
  });

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) {
      return;
    }
    if (typing(event.target)) {
      if (event.key === "Escape") {
        event.target.blur();
        focusRow(current < 0 ? 0 : current);
      }
      return;
    }
    switch (event.key) {
      case "j":
      case "ArrowDown":
        focusRow(current + 1);
        break;
      case "k":
      case "ArrowUp":
        focusRow(current - 1);
        break;
      case "x":
      case " ":
        if (current < 0) {
          return;
        }
        box(rows[current]).checked = !box(rows[current]).checked;
        mark(rows[current]);
        break;
      case "a":
        setAll(selected().length !== rows.length);
        break;
      case "c":
        act("confirm");
        break;
      case "s":
        act("suggested");
        break;
      case "o":
        act("out_of_scope");
        break;
      case "d":
        act("dismiss");
        break;
      case "u":
        act("undo");
        break;
      case "r":
        relabel();
        break;
      case "n":
        follow("next-page");
        break;
      case "p":
        follow("prev-page");
        break;
      case "?":
        if (help) {
          help.open = !help.open;
        }
        break;
      default:
        return;
    }
    event.preventDefault();
  });

  rows.forEach(function (row, index) {
    box(row).addEventListener("change", function () {
      mark(row);
    });
    row.addEventListener("click", function (event) {
      var tag = event.target.tagName;
      if (tag !== "BUTTON" && tag !== "SELECT" && tag !== "A" && tag !== "OPTION") {
        focusRow(index);
      }
    });
  });
  if (selectAll) {
    selectAll.addEventListener("change", function () {
      setAll(selectAll.checked);
    });
  }

  // Back after an action: the same position again. First visit: the first
  // group is current, without scrolling past the filters.
  var stored = null;
  try {
    stored = sessionStorage.getItem(STORE);
    sessionStorage.removeItem(STORE);
  } catch (e) {
    stored = null;
  }
  if (stored !== null) {
    focusRow(parseInt(stored, 10) || 0);
  } else if (rows.length) {
    current = 0;
    rows[0].classList.add("current");
  }
  form.setAttribute("data-keys", "ready"); // for browser tests: the shortcuts work
})();
