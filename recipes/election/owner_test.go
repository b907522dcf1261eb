package election_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/grovekit/grove/recipes/election"
	"github.com/grovekit/grove/recipes/internal/recipetest"
)

// The goroutines behind an election belong to its session: a held
// leadership's watchers and an Observe whose reader went away (its ctx
// never ends) are gone when the session's Close returns. In a synctest
// bubble, so that synctest.Wait can park the observer on its send first.
func TestSessionCloseWaitsForElectionGoroutines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := recipetest.NewInMemory(t)
		s, _ := r.Session(5 * time.Second)
		e := election.New(s, "/owner/election")
		if err := e.Campaign(t.Context(), []byte("a")); err != nil {
			t.Fatal(err)
		}
		_ = e.Lost() // the hold's watchers run
		seen := election.Observe(context.Background(), s, "/owner/election")
		if l := <-seen; string(l.Value) != "a" {
			t.Fatalf("observed %q", l.Value)
		}
		if err := e.Proclaim(t.Context(), []byte("b")); err != nil {
			t.Fatal(err)
		}
		synctest.Wait() // the observer is blocked sending "b", which nobody reads
		if err := s.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		if left := recipetest.RecipeGoroutines(); len(left) > 0 {
			t.Fatalf("%d recipe goroutines outlived the session's Close:\n%s", len(left), left[0])
		}
	})
}
